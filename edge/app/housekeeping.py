"""The edge's periodic work: silent devices go offline, every table is kept
within its bound, and kiosks get nearby bike availability for their idle
screen."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from edge.app.links import DeviceLinks
from edge.core.errors import Rejected
from edge.core.messages import Near
from edge.core.metrics import Metrics
from edge.core.registry import Registry
from edge.core.stations import Stations, nearest

log = logging.getLogger("edge")
DAY_S = 86400.0
RENTALS_KEPT_DAYS = 7


class RetentionStore(Protocol):
    async def retention(self, events_before: float, rentals_before: float,
                        dead_letter_max: int) -> tuple[int, int, int]: ...


class Housekeeping:
    def __init__(self, registry: Registry, stations: Stations, links: DeviceLinks,
                 store: RetentionStore, metrics: Metrics,
                 station_changed: Callable[[str], None], *, heartbeat_timeout_s: float,
                 events_retention_days: float, dead_letter_max: int,
                 station_names: dict[str, str],
                 station_places: dict[str, tuple[float, float]] | None = None,
                 kiosk_places: dict[str, tuple[float, float]] | None = None) -> None:
        self.registry = registry
        self.stations = stations
        self.links = links
        self.store = store
        self.metrics = metrics
        self._station_changed = station_changed
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.events_retention_days = events_retention_days
        self.dead_letter_max = dead_letter_max
        self.station_names = station_names
        self.station_places = station_places or {}
        self.kiosk_places = kiosk_places or {}  # where a kiosk stands: its nearest first

    async def offline_check(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.heartbeat_timeout_s / 3))
            self.silent_go_offline()

    def silent_go_offline(self) -> list[str]:
        """One look: devices silent past the heartbeat timeout go offline, and their
        stations stop counting their bikes. Returns their ids."""
        gone = []
        for d in self.registry.expire():
            self.metrics.inc("devices.timed_out")
            log.warning("device %s silent for %.0f s: offline", d.id, self.heartbeat_timeout_s)
            self.stations.set_online(d.id, False, time.time())
            self._station_changed(d.station)
            gone.append(d.id)
        return gone

    async def retention_loop(self, every_s: float = 3600.0) -> None:
        """Hourly: every table keeps what it needs, and no more (bounds in
        docs/security.md)."""
        while True:
            await self.retention()
            await asyncio.sleep(every_s)

    async def retention(self) -> None:
        now = time.time()
        ev, rn, dl = await self.store.retention(now - self.events_retention_days * DAY_S,
                                                now - RENTALS_KEPT_DAYS * DAY_S,
                                                self.dead_letter_max)
        for name, n in (("events", ev), ("rentals", rn), ("dead_letter", dl)):
            if n:
                self.metrics.inc("retention.deleted", name, n)
        if ev or rn or dl:
            log.info("retention: %d delivered events, %d finished rentals, %d dead letters "
                     "over %d deleted", ev, rn, dl, self.dead_letter_max)

    async def kiosk_feed(self, every_s: float = 10.0) -> None:
        """Kiosks show nearby bike availability on their idle screen: every 10 s
        each online kiosk gets the four stations nearest it (name, bikes, docks;
        the first four configured, for a kiosk whose place is not given). A kiosk
        provisioned since the edge started is fed as one listed in [[kiosks]]."""
        while True:
            await self.feed_kiosks()
            await asyncio.sleep(every_s)

    async def feed_kiosks(self) -> int:
        """One round of the feed; returns how many kiosks were sent their figures."""
        statuses = self.stations.statuses()
        fed = 0
        for k in self.registry.kiosks():
            dev = self.registry.get(k)
            if dev is not None and dev.online and self.links.reachable(k):
                near = Near(tuple(
                    (self.station_names[s.station_id], s.bikes_available, s.docks_available)
                    for s in nearest(statuses, self.station_places, self.kiosk_places.get(k))))
                try:
                    await self.links.send(k, near)
                    fed += 1
                except Rejected:
                    pass
        return fed
