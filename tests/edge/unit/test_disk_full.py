"""The edge's full-disk policy (edge/app/ingest_loop.py over the SQLite store
at its size bound): an event that cannot be written is not acked, so the dock
keeps it and sends it again; the edge counts it and raises an alarm; once
there is room the resent event is stored and acked and the alarm clears."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edge.adapters.store import SqliteStore
from edge.app.ingest_loop import IngestLoop
from edge.app.links import DeviceLinks
from edge.config import StationConfig
from edge.core.ingest import Ingest
from edge.core.messages import Event, Hello, State
from edge.core.metrics import Metrics
from edge.core.ports import Inbound, ReplyBy
from edge.core.registry import Registry
from edge.core.rentals import RentalMachine
from edge.core.stations import Stations
from tests.conftest import run, until

S1 = StationConfig("s1", "一号站", "One", 30.6, 119.6, ("d1",))


class NoRentals:
    def completion(self, rental_id: str) -> None:
        return None

    def stored(self, rental_id: str, ok: bool) -> None:
        pass


def test_a_full_disk_refuses_no_event_for_good(tmp_path: Path) -> None:
    async def main() -> None:
        stations, metrics = Stations((S1,), 0.0), Metrics()
        store = SqliteStore(tmp_path / "edge.db")
        await store.open()
        tasks = [asyncio.create_task(store.run())]
        acked: list[int] = []
        links = DeviceLinks(metrics)

        async def reply(msg: dict[str, Any]) -> None:
            if msg["t"] == "ack":
                acked.append(msg["seq"])

        loop = IngestLoop(Ingest(Registry({"d1": "s1"}, 90.0), stations,
                                 RentalMachine(stations), metrics),
                          store, links, metrics, None, lambda d, c: None,
                          lambda h: None, lambda d, m: None, NoRentals())
        tasks += [asyncio.create_task(loop.dispatch()), asyncio.create_task(links.run())]

        async def send(msg: Hello | State | Event) -> None:
            await loop.inbound.put(Inbound("d1", msg, ReplyBy(reply), "mqtt", 1.0))

        await send(Hello("d1", "dock", "1", 4, 1, "e1"))
        await store.set_size_limit(await store.size_mb())  # the disk is full from here
        seq = 0
        while not metrics.get("store.full"):  # events until one finds no room
            seq += 1
            await send(Event("d1", "e1", seq, "returned", 0, f"0B{seq:08X}"))
            await until(lambda s=seq: s in acked or metrics.get("store.full") > 0, 10)
        refused = seq
        assert refused not in acked and "disk_full" in loop.alarms
        await store.set_size_limit(2048)  # room again; the dock resends what was not acked
        await send(Event("d1", "e1", refused, "returned", 0, f"0B{refused:08X}"))
        await until(lambda: refused in acked, 10)
        assert not loop.alarms
        assert (await store.events())[0]["seq"] == refused  # newest first
        for t in tasks:
            t.cancel()
        await store.close()
    run(main())
