"""A dock's real firmware under MicroPython (the heap it ships with: see
hardware/sim/spec.py HEAP) talking to the edge over a pseudo-terminal serial line."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.conftest import run, until
from hardware.sim.town import Town


async def _events(town: Town) -> list[dict[str, object]]:
    assert town.edge is not None
    return list(reversed(await town.edge.store.events()))


def _station_matches_emulator(town: Town) -> bool:
    assert town.edge is not None
    st = {s.station_id: s for s in town.edge.stations.statuses()}
    for d in town.docks:
        s = st[d.station]
        free = sum(1 for x in d.emulator.slots if not x.present)
        if (s.bikes_available, s.docks_available) != (d.emulator.locked_bikes(), free):
            return False
    return True


def test_rent_and_return_over_serial(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=3, fill=0.5) as town:
            await town.wait_online()
            d = town.docks[0]
            bike = await town.rent(d)
            assert bike is not None
            evs = await until(lambda: _events(town))
            assert [(e["kind"], e["bike"]) for e in evs] == [("rented", bike)]
            slot = town.give_back(d, bike)
            assert slot is not None

            async def returned() -> bool:
                return any(e["kind"] == "returned" and e["bike"] == bike
                           for e in await _events(town))
            await until(returned)
            await until(lambda: _station_matches_emulator(town))
            evs = await _events(town)
            assert len({(e["epoch"], e["seq"]) for e in evs}) == len(evs) == 2
            assert town.edge.metrics.get("events.stored") == 2  # type: ignore[union-attr]
    run(main())


def test_noisy_line_and_unplugged_cable_lose_nothing(tmp_path: Path) -> None:
    """Bit errors and a pulled cable: every accepted event reaches the journal once."""
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=6, mqtt_share=0, seed=5, fill=0.5) as town:
            await town.wait_online()
            d = town.docks[0]
            assert d.line is not None
            d.line.noise = 0.002
            rented = []
            for _ in range(3):
                b = await town.rent(d)
                if b:
                    rented.append(b)
            d.line.plugged = False  # events now wait in the dock's flash journal
            for b in rented:
                town.give_back(d, b)
            await asyncio.sleep(1.0)
            # Power cut while offline: the journal must survive the reboot.
            assert d.proc is not None
            d.proc.send_signal(signal.SIGKILL)
            await until(lambda: d.restarts >= 1)
            d.line.plugged = True

            async def all_in() -> bool:
                return len(await _events(town)) == 2 * len(rented)
            await until(all_in, 30)
            evs = await _events(town)
            assert sorted(e["kind"] for e in evs) == ["rented"] * len(rented) + \
                ["returned"] * len(rented)
            assert len({(e["epoch"], e["seq"]) for e in evs}) == len(evs)
            assert sorted(e["bike"] for e in evs if e["kind"] == "returned") == sorted(rented)
            await until(lambda: _station_matches_emulator(town), 20)
    run(main())


def test_unreadable_tag_is_a_fault_and_the_bike_is_not_locked(tmp_path: Path) -> None:
    """A corrupt tag-reader frame (bad checksum) or a silent reader: the dock
    reports `tag_unreadable`, does not lock an unknown bike, and the station
    counts it as a disabled bike until it is taken back."""
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=3, fill=0.0) as town:
            await town.wait_online()
            assert town.edge is not None
            d = town.docks[0]
            d.emulator.set_tag_fault(1, "corrupt")
            d.emulator.insert_bike(1, "0B0000ABCD")

            async def fault() -> list[dict[str, object]]:
                return [e for e in await _events(town) if e["kind"] == "fault"]
            evs = await until(fault, 15)
            assert evs[0]["code"] == "tag_unreadable" and evs[0]["slot"] == 1
            assert not d.emulator.slots[1].latched  # the rider can take it back
            await until(lambda: town.edge.stations.statuses()[0].bikes_disabled == 1)
            assert town.edge.stations.statuses()[0].bikes_available == 0
            d.emulator.take_bike(1)
            await until(lambda: town.edge.stations.statuses()[0].bikes_disabled == 0)
    run(main())


def test_a_full_journal_refuses_rentals_and_keeps_every_return(tmp_path: Path) -> None:
    """The edge cannot store events (its disk is full): the dock keeps each
    accepted event on flash. Once its journal holds journal_max minus one
    return per slot, it refuses rentals, saying why, and still records a bike
    pushed in; when the edge stores again, everything arrives once and renting
    resumes."""
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=3, fill=1.0,
                        backend=False, heartbeat_s=2, dock_config={"journal_max": 6}) as town:
            await town.wait_online()
            edge = town.edge
            assert edge is not None
            d = town.docks[0]
            real_submit = edge.store.submit_many

            def disk_full(items):  # type: ignore[no-untyped-def]
                # A transaction with an event in it fails, as on a full disk.
                if any(type(i).__name__ == "EventRecord" for i in items):
                    f = asyncio.get_running_loop().create_future()
                    f.set_exception(OSError(28, "No space left on device"))
                    return f
                return real_submit(items)

            edge.store.submit_many = disk_full  # type: ignore[method-assign]
            taken = [await town.rent(d, 0), await town.rent(d, 1)]
            assert all(taken)  # two rentals accepted: two events wait on flash
            await until(lambda: d.log_path.read_text().count("event rented") == 2, 10)
            res = await edge.command(d.dev, "unlock", slot=2)
            assert (res.ok, res.err, res.slot) == (False, "journal_full", 2)
            assert d.emulator.takeable() == []
            town.give_back(d, taken[0], 0)  # a return is always recorded
            await until(lambda: "event returned slot=0" in d.log_path.read_text(), 10)
            assert "journal full (2 events wait for the edge)" in d.log_path.read_text()
            # The heartbeat says how full the flash is; the edge raises the alarm.
            await until(lambda: f"flash_full:{d.dev}" in edge.alarms(), 10)
            assert "disk_full" in edge.alarms()  # the edge's own store refused them
            edge.store.submit_many = real_submit  # type: ignore[method-assign]
            await until(lambda: edge.metrics.get("events.stored") == 3, 20)
            rows = await edge.store.events()
            assert sorted((r["kind"], r["slot"]) for r in rows) == [
                ("rented", 0), ("rented", 1), ("returned", 0)]
            assert await town.rent(d, 2) is not None  # room again
            await until(lambda: not edge.alarms(), 10)  # both alarms clear
    run(main())
