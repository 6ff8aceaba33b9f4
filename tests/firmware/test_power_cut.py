"""A dock's power cut at the moments that matter, on the real firmware: its
process killed (SIGKILL: no clean-up, its flash folder kept), powered up again
by its supervisor on the same flash and sensors. Each time, the dock's next
boot must tell only what physically changed while it was off (the slot logic
with every cut point: tests/wire/cases/dock.py). The audit then reads the
whole story (hardware/sim/audit.py): nothing lost, no wrong story."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hardware.sim.audit import audit, slot_story
from hardware.sim.devices import SimDock
from hardware.sim.town import Town
from tests.conftest import run, until


async def _cut(town: Town, d: SimDock, while_off: object = None) -> None:
    """Power off, do `while_off()` to the slots, power on; until the edge has
    heard the new boot and its slots."""
    assert town.edge is not None and d.proc is not None
    boot = town.edge.registry.devices[d.dev].boot
    d.proc.kill()
    await d.proc.wait()
    if callable(while_off):
        while_off()
    await until(lambda: town.edge.registry.devices[d.dev].boot > boot, 30,  # type: ignore[union-attr]
                "the dock's next boot")


def _events_since(d: SimDock, mark: int) -> list[str]:
    lines = d.log_path.read_text(errors="replace").splitlines()[mark:]
    return [ln.split(": ", 1)[1] for ln in lines if ": event " in ln]


def _mark(d: SimDock) -> int:
    return len(d.log_path.read_text(errors="replace").splitlines())


def test_a_power_cut_tells_only_what_changed_while_the_dock_was_off(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=3, mqtt_share=0, seed=8, fill=1.0,
                        heartbeat_s=2) as town:
            await town.wait_online()
            assert town.edge is not None
            d = town.docks[0]
            await until(lambda: d.emulator.locked_bikes() == 3)
            # Every docked bike's tag read, so the dock has told of each slot.
            await asyncio.sleep(1.0)

            # 1. The story: unlocked, the bolt open, the bike still in.
            assert (await town.edge.command(d.dev, "unlock", slot=0)).ok
            mark = _mark(d)
            await _cut(town, d)
            await until(lambda: d.emulator.slots[0].latched, 10, "slot 0 locked again")
            await asyncio.sleep(1.0)
            assert _events_since(d, mark) == [], "a bike that never left was announced"

            # 2. Taken, then the power goes at once: told once, not again at boot.
            bike = await town.technician_unlock(d, 1)
            assert bike is not None
            await until(lambda: any(f"rented slot=1 bike={bike}" in e
                                    for e in _events_since(d, mark)), 10)
            mark = _mark(d)
            await _cut(town, d)
            await asyncio.sleep(1.0)
            assert _events_since(d, mark) == []

            # 3. Unlocked, and the bike taken while the dock was off: a theft alarm.
            assert (await town.edge.command(d.dev, "unlock", slot=2)).ok
            gone = d.emulator.slots[2].bike
            await _cut(town, d, lambda: d.emulator.take_bike(2))
            await until(lambda: any(f"fault slot=2 bike={gone}" in e
                                    for e in _events_since(d, mark)), 10, "the alarm")

            # 4. A bike pushed into an empty slot while the dock was off: one return.
            mark = _mark(d)
            await _cut(town, d, lambda: d.emulator.insert_bike(1, bike))
            await until(lambda: any(f"returned slot=1 bike={bike}" in e
                                    for e in _events_since(d, mark)), 10, "the return")
            await asyncio.sleep(1.0)
            assert len(_events_since(d, mark)) == 1

            async def delivered() -> bool:
                a = audit(town.docks, town.dir / "edge.db", town.backend)
                return not a.in_flight and len(a.at_backend) == len(a.accepted)
            await until(delivered, 20)
            a = audit(town.docks, town.dir / "edge.db", town.backend)
            print(a.table())
            assert not a.lost and not a.duplicated and not a.wrong, a.table()
            # The audit reads what the old firmware did here as the wrong story it is.
            text = d.log_path.read_text(errors="replace")
            assert slot_story(d.dev, text + "I 9 dock: event returned slot=1 bike=X seq=99\n",
                              {})[-1].startswith(f"{d.dev} seq 99: bike X returned into slot 1")
    run(main())
