"""The dock firmware as shipped (.mpy) in the heap it ships with for its link
(hardware/sim/spec.py HEAP, MQTT_HEAP), 12 slots, on both links (MQTT over TLS): a run of rentals and returns
with no MemoryError, no restart, and the free heap each heartbeat reports
(after a collection) never below 10% of the heap (the house rule)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import needs_mosquitto, run, until
from hardware.sim.spec import HEAP, MQTT_HEAP
from hardware.sim.town import Town


def floor(heap: str) -> int:
    """10% of a heap size such as "80K": the least a device keeps free."""
    return int(heap.rstrip("K")) * 1024 // 10


@needs_mosquitto
def test_twelve_slot_docks_soak_in_their_heap_on_serial_and_mqtt(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=12, mqtt_share=0.5, seed=9, fill=0.5,
                        heartbeat_s=2) as town:
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
                    # The dock's own lowest since boot (after collections), which
                    # also covers the moments between the test's looks.
                    assert dev.heap_free is not None and dev.heap_low is not None
                    assert dev.heap_low <= dev.heap_free
                    lows[dev.id] = dev.heap_low
            heaps = {d.dev: MQTT_HEAP if d.link == "mqtt" else HEAP for d in town.docks}
            print("lowest free heap per dock:", {d: f"{lows[d]} of {heaps[d]}" for d in lows})
            assert edge.metrics.get("events.stored") == 2 * 2 * 6
            for d in town.docks:
                log = d.log_path.read_text()
                assert "MemoryError" not in log, f"{d.dev} ({d.link}) ran out of heap"
                assert d.restarts == 0
                assert lows[d.dev] >= floor(heaps[d.dev]), \
                    f"{d.dev} ({d.link}): {lows[d.dev]} bytes free of {heaps[d.dev]}"
    run(main())

