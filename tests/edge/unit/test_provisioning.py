"""Registering a device (edge/app/provisioning.py and the rule in
edge/core/registry.py), with plain values: what is refused and why, and what a
registration writes, in order, and brings back at the next start."""

from __future__ import annotations

from typing import Any

import pytest

from edge.app.provisioning import Provisioning
from edge.config import StationConfig
from edge.core.errors import Rejected
from edge.core.registry import Registry, registration_problem
from edge.core.stations import Stations
from tests.conftest import run

S1 = StationConfig("s1", "一号站", "One", 30.6, 119.6, ("dock-1",))


@pytest.mark.parametrize("dev,station,kind,has_keys,replace,why", [
    ("Dock 1", "s1", "dock", False, False, "bad_id"),
    ("huimin-edge", "s1", "dock", False, False, "bad_id"),  # reserved prefix
    ("edge-x", "s1", "dock", False, False, "bad_id"),
    ("dock-9", "s1", "dock", True, False, "exists"),
    ("dock-9", "s1", "lamp", False, False, "bad_kind"),
    ("dock-9", "s2", "dock", False, False, "unknown_station"),
])
def test_what_a_registration_is_refused_for(dev: str, station: str, kind: str,
                                            has_keys: bool, replace: bool, why: str) -> None:
    got = registration_problem(dev, station, kind, {"s1"}, has_keys, replace, "edge-acct")
    assert got is not None and got.reason == why


def test_re_keying_only_when_asked_and_never_the_edges_own_account() -> None:
    assert registration_problem("dock-9", "s1", "dock", {"s1"}, True, True, None) is None
    got = registration_problem("site-acct", "s1", "dock", {"s1"}, False, False, "site-acct")
    assert got is not None and "the edge's own broker account" in str(got)


class Keys:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def has(self, dev: str) -> bool:
        return dev in self.rows

    def add(self, dev: str, command_key: str, **extra: str) -> None:
        self.rows[dev] = {"command_key": command_key, **extra}


class Store:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    async def provisioned_put(self, dev: str, station: str, kind: str) -> None:
        self.rows.append((dev, station, kind))

    async def provisioned_all(self) -> list[tuple[str, str, str]]:
        return list(self.rows)


def test_a_registration_writes_keys_then_the_store_then_the_live_registry() -> None:
    async def main() -> None:
        keys, store = Keys(), Store()
        stations = Stations((S1,), 0.0)
        p = Provisioning(keys, store, Registry({"dock-1": "s1"}, 90.0), stations, None)
        await p.register("kiosk-7", "s1", "kiosk", "ab" * 16, "$7$hash")
        assert keys.rows["kiosk-7"] == {"command_key": "ab" * 16, "mqtt_password": "$7$hash"}
        assert store.rows == [("kiosk-7", "s1", "kiosk")]
        assert p.registry.get("kiosk-7") is not None
        with pytest.raises(Rejected, match="registered already"):
            await p.register("kiosk-7", "s1", "kiosk", "cd" * 16)
        # The next start: a fresh registry learns it from the store.
        again = Provisioning(keys, store, Registry({"dock-1": "s1"}, 90.0),
                             Stations((S1,), 0.0), None)
        await again.restore()
        d = again.registry.get("kiosk-7")
        assert d is not None and d.role == "kiosk"
    run(main())
