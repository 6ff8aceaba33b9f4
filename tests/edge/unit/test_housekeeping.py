"""The edge's periodic work (edge/app/housekeeping.py), one round at a time with
plain values: a silent dock goes offline and its station stops counting its
bikes; each online kiosk is sent the stations nearest it, through the one door."""

from __future__ import annotations

import time
from typing import Any

from edge.app.housekeeping import Housekeeping
from edge.app.links import DeviceLinks
from edge.config import StationConfig
from edge.core.metrics import Metrics
from edge.core.ports import ReplyBy
from edge.core.registry import Registry
from edge.core.stations import Stations
from tests.conftest import run

NEAR = StationConfig("near", "近站", "Near", 30.600, 119.600, ("dock-a",))
FAR = StationConfig("far", "远站", "Far", 30.700, 119.700, ("dock-b",))


class NoRetention:
    async def retention(self, events_before: float, rentals_before: float,
                        dead_letter_max: int) -> tuple[int, int, int]:
        return 0, 0, 0


def _house(changed: list[str]) -> tuple[Housekeeping, Registry, Stations, DeviceLinks]:
    registry = Registry({"dock-a": "near", "dock-b": "far", "kiosk-1": ""}, 30.0,
                        kiosks=("kiosk-1",))
    stations = Stations((NEAR, FAR), 0.0)
    links = DeviceLinks(Metrics())
    house = Housekeeping(registry, stations, links, NoRetention(), Metrics(), changed.append,
                         heartbeat_timeout_s=30.0, events_retention_days=90,
                         dead_letter_max=10, station_names={"near": "近站", "far": "远站"},
                         station_places={"near": (30.6, 119.6), "far": (30.7, 119.7)},
                         kiosk_places={"kiosk-1": (30.69, 119.69)})
    return house, registry, stations, links


def test_a_silent_dock_goes_offline_and_its_station_says_so() -> None:
    changed: list[str] = []
    house, registry, stations, _ = _house(changed)
    for dev in ("dock-a", "dock-b"):
        registry.seen(registry.devices[dev], "mqtt", 1.0)
        stations.apply_state(dev, 1, 0, "LLE", 1.0)
        stations.set_online(dev, True, 1.0)
    assert house.silent_go_offline() == []  # both heard just now
    registry.devices["dock-a"].last_seen_mono = time.monotonic() - 31  # silent past the timeout
    assert house.silent_go_offline() == ["dock-a"]
    assert changed == ["near"] and not registry.devices["dock-a"].online
    assert house.silent_go_offline() == []  # once


def test_each_online_kiosk_gets_the_stations_nearest_it() -> None:
    async def main() -> None:
        house, registry, stations, links = _house([])
        for dev, slots in (("dock-a", "LLE"), ("dock-b", "LEE")):
            stations.apply_state(dev, 1, 0, slots, 1.0)
            stations.set_online(dev, True, 1.0)
        got: list[dict[str, Any]] = []

        async def kiosk(msg: dict[str, Any]) -> None:
            got.append(msg)
        assert await house.feed_kiosks() == 0  # never heard: nothing to send it on
        links.heard("kiosk-1", ReplyBy(kiosk))
        assert await house.feed_kiosks() == 0  # heard once, but not online now
        registry.seen(registry.devices["kiosk-1"], "serial:x", 2.0)
        assert await house.feed_kiosks() == 1
        # The kiosk stands by the far station: it comes first.
        assert got == [{"t": "near", "stations": [["远站", 1, 2], ["近站", 2, 1]]}]
    run(main())
