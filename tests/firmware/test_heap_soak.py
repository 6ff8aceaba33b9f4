"""The dock firmware as shipped (.mpy) in the heap it ships with for its link
(hardware/sim/spec.py HEAP, MQTT_HEAP), 12 slots, on both links (MQTT over TLS): a run of rentals and returns
with no MemoryError, no restart, and the free heap each heartbeat reports
(after a collection) never below 10% of the heap (the house rule)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hardware.sim.audit import journal_pending
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



@needs_mosquitto
def test_a_backlog_after_an_edge_restart_fits_the_heap(tmp_path: Path) -> None:
    """The worst moment for a dock's heap: the edge is gone while riders bring
    bikes back, so events and state reports pile up for it; then it comes back
    and asks for a hello, and the dock sends its backlog at once. A serial dock
    in 76K did run out here (its queue took a new heap block per message, in a
    heap fragmented to no hole over 600 bytes); now its queue and frames are
    buffers made at boot (wire/link.py)."""
    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=12, mqtt_share=0.5, seed=7, fill=0.6,
                        heartbeat_s=2, edge_process=True) as town:
            await town.wait_online(30)
            for rnd in range(2):
                out = []
                for d in town.docks:
                    for _ in range(5):
                        bike = await town.rent(d)
                        assert bike is not None, f"{d.dev}: no bike to rent in round {rnd}"
                        out.append((d, bike))
                await asyncio.sleep(0.5)
                await town.kill_edge_process()
                for d, bike in out:  # returns while the edge is away: a backlog
                    town.give_back(d, bike)
                    await asyncio.sleep(0.2)
                await asyncio.sleep(3)  # heartbeats queue up too
                await town.start_edge_process()
                await town.wait_online(30)
            for d in town.docks:  # every event reached the edge: nothing is pending
                await until(lambda d=d: not journal_pending(d.flash / "journal"), 20)
            await asyncio.sleep(2.1)  # a heartbeat with the heap figure
            devices = {d["id"]: d for d in await town.edge_api("devices")}
            for d in town.docks:
                log = d.log_path.read_text()
                heap = MQTT_HEAP if d.link == "mqtt" else HEAP
                low = devices[d.dev]["heap_low"]
                print(f"{d.dev} ({d.link}): lowest free heap {low} of {heap}")
                assert "MemoryError" not in log, f"{d.dev} ({d.link}) ran out of heap"
                assert d.restarts == 0
                assert low is not None and low >= floor(heap), f"{d.dev}: {low} free of {heap}"
    run(main())
