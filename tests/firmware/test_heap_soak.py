"""The dock firmware as shipped (.mpy) under `micropython -X heapsize=64K`, 12
slots, on both links: a run of rentals and returns with no MemoryError, no
restart, and the free heap each heartbeat reports staying above a floor."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import needs_mosquitto, run, until
from tools.town import Town

FLOOR = 4096  # bytes a dock keeps free in steady state (heartbeat after gc)


@needs_mosquitto
def test_twelve_slot_docks_soak_in_64k_on_serial_and_mqtt(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=12, mqtt_share=0.5, seed=9, fill=0.5,
                        heartbeat_s=2, heap="64K") as town:
            await town.wait_online()
            edge = town.edge
            assert edge is not None
            lows: dict[str, int] = {}
            for rnd in range(6):
                for d in town.docks:
                    before = edge.metrics.get("events.stored")
                    bike = await town.rent(d)
                    assert bike is not None, f"{d.dev}: no bike to rent in round {rnd}"
                    await until(lambda b=before: edge.metrics.get("events.stored") > b)
                    town.give_back(d, bike)
                    await until(lambda b=before: edge.metrics.get("events.stored") > b + 1)
                await asyncio.sleep(2.1)  # a heartbeat with the heap figure
                for dev in edge.registry.devices.values():
                    assert dev.heap_free is not None
                    lows[dev.id] = min(lows.get(dev.id, 1 << 30), dev.heap_free)
            print("lowest free heap per dock:", lows)
            assert edge.metrics.get("events.stored") == 2 * 2 * 6
            for d in town.docks:
                log = d.log_path.read_text()
                assert "MemoryError" not in log, f"{d.dev} ({d.link}) ran out of heap"
                assert d.restarts == 0
                assert lows[d.dev] >= FLOOR, f"{d.dev} ({d.link}): {lows[d.dev]} bytes free"
    run(main())


def test_dock_interned_names_stay_under_the_pool_boundary(tmp_path: Path) -> None:
    """MicroPython interns names in pools that double; the fifth opens past 300
    names and costs 3.7K of a 64K heap. The dock makes ~10 names at run time, so
    the bootloader and its code may bring at most 288. Over? Move names out of
    what docks load (see firmware/apps/dock/README.md, Heap budget)."""
    from tests.firmware.names import interned_at_boot

    for link in ("serial", "mqtt"):
        cfg = {"dev": "d1", "kind": "dock", "slots": 12, "link": link, "uart": "/dev/null"}
        n = interned_at_boot(tmp_path / link, cfg, f"uplink.{link}, apps.dock.app, "
                             "apps.dock.config, bus" + (", uart" if link == "serial" else ""))
        assert n <= 288, f"dock ({link}) interns {n} names"
