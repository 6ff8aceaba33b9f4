"""The edge process is killed (SIGKILL) while a webhook post is in flight and
started again: every rent/return the docks made, before, during and after,
reaches the backend exactly once (the outbox resends; the backend refuses the
duplicate by its idempotency key)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from hardware.sim.town import Town
from tests.conftest import needs_mosquitto, run, until

pytestmark = needs_mosquitto


async def _edge_json(town: Town, path: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s, s.get(
            f"http://127.0.0.1:{town.http_port}{path}",
            headers={"Authorization": f"Bearer {town.token}"}) as r:
        data: dict[str, Any] = await r.json()
        return data


async def _all_online(town: Town) -> bool:
    devs = (await _edge_json(town, "/api/devices"))["devices"]
    return all(d["online"] for d in devs)


def _return_bikes(town: Town, n: int, tag: int) -> int:
    made = 0
    for d in town.docks:
        free = [i for i, s in enumerate(d.emulator.slots) if not s.present][:n]
        for i in free:
            d.emulator.insert_bike(i, f"0C{tag:02X}{d.dev[-2:]}{i:04X}")
            made += 1
    return made


def test_sigkill_mid_send_then_restart_delivers_each_event_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=6, mqtt_share=1, seed=8, fill=0.3,
                        edge_process=True) as town:
            assert town.backend is not None
            backend = town.backend
            await until(lambda: _all_online(town), 20)
            backend.delay_s = 0.8  # every post is in flight for a while
            made = _return_bikes(town, 2, 1)
            # The backend has stored a batch with events and is still answering:
            # the edge dies before it hears the 200.
            await until(lambda: len(backend.events()) > 0, 20)
            await town.kill_edge_process()
            made += _return_bikes(town, 1, 2)  # docks go on; the broker keeps their events
            await asyncio.sleep(1.0)
            backend.delay_s = 0.0
            await town.start_edge_process()
            await until(lambda: len(backend.events()) >= made, 40)
            await asyncio.sleep(1.0)  # nothing more should arrive
            evs = backend.events()
            assert len(evs) == made
            assert backend.stats["duplicates"] >= 1  # the resend happened and was refused
            assert len({e["key"] for e in evs}) == made
            assert {e["bike"] for e in evs} == {
                s.bike for d in town.docks for s in d.emulator.slots if s.bike and
                s.bike.startswith("0C")}
            edge_events = (await _edge_json(town, "/api/events?limit=1000"))["events"]
            assert len(edge_events) == made
    run(main())
