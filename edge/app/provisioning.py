"""Registering devices (`huimin provision`, over the edge's API): the checks
(edge/core/registry.py registration_problem) then the effects, in order: the
device's keys to the keys file, the registration to the store, and the live
registry and stations; at start, every device registered before comes back."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from edge.core.registry import Registry, registration_problem
from edge.core.stations import Stations

log = logging.getLogger("edge")


class KeyBook(Protocol):
    """The devices' keys (edge/adapters/device_keys.py)."""

    def has(self, dev: str) -> bool: ...

    def add(self, dev: str, command_key: str, **extra: str) -> None: ...


class RegistrationStore(Protocol):
    async def provisioned_put(self, dev: str, station: str, kind: str) -> None: ...

    async def provisioned_all(self) -> list[tuple[str, str, str]]: ...


class Provisioning:
    def __init__(self, keys: KeyBook, store: RegistrationStore, registry: Registry,
                 stations: Stations, edge_account: str | None) -> None:
        self.keys = keys
        self.store = store
        self.registry = registry
        self.stations = stations
        self.edge_account = edge_account  # the edge's own broker account: never a device's

    async def restore(self) -> None:
        """At start: the devices registered since the configuration was written."""
        for dev, station, kind in await self.store.provisioned_all():
            if station in self.stations.by_id:
                self.registry.add(dev, station, kind)
                self.stations.add_device(dev, station)

    async def register(self, dev: str, station: str, kind: str, command_key: str,
                       mqtt_password_hash: str | None = None, replace: bool = False) -> None:
        """A device may talk to the edge from now on, and stays registered across
        restarts; its command key (and broker password hash, for `huimin broker`)
        go to the keys file. Rejected with the reason otherwise."""
        problem = registration_problem(dev, station, kind, self.stations.by_id,
                                       self.keys.has(dev), replace, self.edge_account)
        if problem is not None:
            raise problem
        extra = {"mqtt_password": mqtt_password_hash} if mqtt_password_hash else {}
        await asyncio.to_thread(self.keys.add, dev, command_key, **extra)
        await self.store.provisioned_put(dev, station, kind)
        self.registry.add(dev, station, kind)
        self.stations.add_device(dev, station)
        log.info("device %s registered at station %s (%s)", dev, station, kind)
