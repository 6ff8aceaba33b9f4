"""The bridge's sender (cloud_bridge/bridge.py) reads the next batch while one
travels and deletes the last while the next travels. Whatever the batches, the
failures and the rows that change on the way, the backend gets every event, in
order, and each station's newest status, with the real store under it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_bridge.bridge import Bridge
from cloud_bridge.errors import UplinkError
from cloud_bridge.uplink import OnRental
from edge.adapters.store import SqliteStore
from edge.config import UplinkConfig, parse
from edge.core.metrics import Metrics
from edge.core.records import EventRecord, OutboxRecord, OutboxRow
from edge.core.stations import Stations
from tests.conftest import run, until


class Backend:
    """An uplink that keeps what each delivery carried. It can refuse a delivery
    (the backend down) and change a station's status while one travels (the
    dock reported again): both what a real backend and town do to a sender."""

    answers_funds = False

    def __init__(self, cfg: UplinkConfig, store: SqliteStore, fail: set[int],
                 change: dict[int, str]) -> None:
        self.cfg, self.name, self.store = cfg, cfg.name, store
        self.fail, self.change = fail, change  # by the delivery's number, from 1
        self.deliveries: list[list[tuple[str, str]]] = []
        self.stored: list[tuple[str, str]] = []  # what the backend kept, in order
        self.kept: list[int] = []  # the deliveries it kept

    async def deliver(self, rows: list[OutboxRow]) -> None:
        self.deliveries.append([(r.key, r.body) for r in rows])
        n = len(self.deliveries)
        if n in self.change:
            station = self.change[n]
            await self.store.submit(OutboxRecord("status", f"status:{station}", station,
                                                 f'{{"n":{n}}}'))
        await asyncio.sleep(0)  # the reads and deletes around it get their turn
        if n in self.fail:
            raise UplinkError("HTTP 503", retry_after=0.0)
        self.stored += self.deliveries[-1]
        self.kept.append(n)

    async def run(self, on_rental: OnRental) -> None:
        await asyncio.Event().wait()

    async def publish_feed(self, path: str, body: bytes) -> bool:
        return False

    async def fetch_funds(self, token: str, wait_s: float) -> dict[str, Any] | None:
        return None

    async def close(self) -> None:
        pass


def _event(seq: int) -> EventRecord:
    return EventRecord("dock-a", "e", seq, "s1", "rented", seq % 12, "B1", None, 1.0e9,
                       outbox=f'{{"seq":{seq}}}')


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.integers(1, 80), batch=st.integers(1, 8),
       fail=st.sets(st.integers(1, 10), max_size=3),
       change=st.dictionaries(st.integers(1, 6), st.sampled_from(["s1", "s2"]),
                              max_size=3))
def test_every_event_in_order_and_each_station_newest(
        tmp_path_factory: Any, events: int, batch: int, fail: set[int],
        change: dict[int, str]) -> None:
    tmp: Path = tmp_path_factory.mktemp("sender")
    cfg = parse({"edge": {"site": "t", "http_port": 0, "db": str(tmp / "edge.db")},
                 "uplinks": [{"name": "city", "kind": "webhook",
                              "url": "https://backend.example/webhook",
                              "secret": "s" * 32, "batch": batch}]})

    async def main() -> None:
        store = SqliteStore(tmp / "edge.db", ("city",))
        await store.open()
        writer = asyncio.create_task(store.run())
        backend = Backend(cfg.uplinks[0], store, fail, change)
        bridge = Bridge(cfg, store, Stations((), 0.0), Metrics(), lambda r: None)
        try:
            for station in ("s1", "s2"):  # a status each, among the events
                await store.submit(OutboxRecord("status", f"status:{station}", station,
                                                '{"n":0}'))
            await store.submit_many([_event(seq) for seq in range(1, events + 1)])
            sender = asyncio.create_task(bridge._send(backend))
            try:
                await until(_empty(store), timeout=30, what="the lane drained")
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
        finally:
            writer.cancel()
            await store.close()

        kept = [key for key, _ in backend.stored if key.startswith("ev:")]
        # Every event, in order; again only when its delivery failed (the backend
        # drops a repeat by key).
        firsts = list(dict.fromkeys(kept))
        assert firsts == [f"ev:dock-a:e:{seq}" for seq in range(1, events + 1)]
        assert len(kept) == len(firsts)  # a delivery that failed was not kept
        # Each station's last status at the backend is its newest.
        for station in ("s1", "s2"):
            newest = max((n for n, s in change.items() if s == station
                          and n <= len(backend.deliveries)), default=0)
            last = [body for key, body in backend.stored if key == f"status:{station}"][-1]
            assert last == f'{{"n":{newest}}}', (station, backend.deliveries)
        # A status that changed while it travelled comes again within the next two
        # deliveries kept, not behind the rest of the backlog.
        for n, station in change.items():
            key = f"status:{station}"
            if n > len(backend.deliveries) or key not in dict(backend.deliveries[n - 1]):
                continue
            after = [backend.deliveries[k - 1] for k in backend.kept if k > n][:2]
            assert any(dict(d).get(key) == f'{{"n":{n}}}' for d in after) or \
                any(m > n and s == station for m, s in change.items()), \
                (n, station, backend.deliveries)

    run(main())


def _empty(store: SqliteStore) -> Any:
    async def check() -> bool:
        return (await store.outbox_stats("city"))[0] == 0
    return check
