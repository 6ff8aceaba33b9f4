"""The edge's SQLite store (edge/adapters/store.py) on its own, in a temporary
folder: an event stored once whatever the resends, the outbox's order and
coalescing, dead letters, slot reports, and a database from before rentals
had states."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.adapters.store import SqliteStore, _chunks
from edge.core.records import EventRecord, OutboxRecord, StateRecord
from edge.core.rentals import CLAIMED, DONE, Outcome, Rental
from tests.conftest import run


def _event(seq: int, outbox: str | None = '{"e":1}') -> EventRecord:
    return EventRecord("d1", "e1", seq, "s1", "returned", 0, "0B01", None, 100.0 + seq,
                       outbox=outbox)


def test_an_event_is_stored_once_and_queued_once_per_uplink(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "edge.db", ("city", "city-mqtt"))
        await store.open()
        writer = asyncio.create_task(store.run())
        try:
            assert await store.submit(_event(1)) is True
            assert await store.submit(_event(1)) is False  # a resend: a duplicate
            assert [e["seq"] for e in await store.events()] == [1]
            for up in ("city", "city-mqtt"):
                rows = await store.outbox_batch(up, 10)
                assert [r.key for r in rows] == ["ev:d1:e1:1"]
        finally:
            writer.cancel()
            await store.close()
    run(main())


def test_station_status_is_coalesced_and_a_row_updated_in_flight_stays(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "edge.db", ("city",))
        await store.open()
        writer = asyncio.create_task(store.run())
        try:
            await store.submit(OutboxRecord("status", "status:s1", "s1", '{"v":1}'))
            first = await store.outbox_batch("city", 10)
            await store.submit(OutboxRecord("status", "status:s1", "s1", '{"v":2}'))
            await store.outbox_done("city", [(r.id, r.version) for r in first])
            left = await store.outbox_batch("city", 10)
            assert [r.body for r in left] == ['{"v":2}']  # the newer one was not deleted
            await store.outbox_dead_letter("city", left, "refused")
            assert await store.outbox_stats("city") == (0, None)
        finally:
            writer.cancel()
            await store.close()
    run(main())


def test_slot_reports_and_rentals_come_back_after_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "edge.db")
        await store.open()
        writer = asyncio.create_task(store.run())
        await store.submit(StateRecord("d1", 2, 7, "LLEE", 50.0))
        await store.rental_claim("r-1", "s1", 10.0)
        r = Rental("r-1", "s1", DONE, "d1", 2, 0.0, 10.0,
                   Outcome("r-1", "s1", True, 10.5, state="rented", slot=2, bike="0B02"))
        await store.rental_save(r)
        await store.rental_claim("r-2", "s1", 11.0)
        writer.cancel()
        await store.close()
        store = SqliteStore(tmp_path / "edge.db")
        await store.open()
        assert await store.states() == [StateRecord("d1", 2, 7, "LLEE", 50.0)]
        assert [(x.id, x.state) for x in await store.rentals_active()] == [("r-2", CLAIMED)]
        assert await store.rental_claim("r-1", "s1", 12.0) == r
        await store.close()
    run(main())


def test_a_database_from_before_rental_states_is_migrated(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "edge.db")
    db.executescript("CREATE TABLE rentals (id TEXT PRIMARY KEY, station TEXT NOT NULL,"
                     " result TEXT, created REAL NOT NULL);"
                     "INSERT INTO rentals VALUES ('old-done', 's1', '{\"ok\": true}', 1.0);"
                     "INSERT INTO rentals VALUES ('old-stuck', 's1', NULL, 2.0);")
    db.commit()
    db.close()

    async def main() -> None:
        store = SqliteStore(tmp_path / "edge.db")
        await store.open()
        # The stuck one is active again, so the next start answers it.
        assert [(r.id, r.state) for r in await store.rentals_active()] == [("old-stuck", CLAIMED)]
        assert (await store.rental_claim("old-done", "s1", 3.0)).result == Outcome(  # type: ignore[union-attr]
            "old-done", "s1", True, 1.0)
        await store.close()
    run(main())


def test_a_commit_is_synced_and_a_failed_step_writes_nothing(tmp_path: Path) -> None:
    """An event acked to its dock is on the disk, not only in the kernel's cache
    (synchronous FULL: the dock drops it from its flash on the ack, and the Pi's
    power can be cut the next moment); deleting delivered outbox rows, which a
    power cut can only make resend, relaxes it for its own commit only. And a
    transaction of several steps is one: the connection is in autocommit mode,
    where `with db:` alone left the steps before a failure written."""
    async def main() -> None:
        store = SqliteStore(tmp_path / "edge.db", ("city",))
        await store.open()
        writer = asyncio.create_task(store.run())

        def synchronous() -> int:
            assert store._db is not None
            return int(store._db.execute("PRAGMA synchronous").fetchone()[0])
        try:
            assert synchronous() == 2  # FULL
            assert await store.submit(_event(1)) is True
            rows = await store.outbox_batch("city", 10)
            await store.outbox_done("city", [(r.id, r.version) for r in rows])
            assert synchronous() == 2 and await store.outbox_batch("city", 10) == []
            steps: list[tuple[str, tuple[object, ...]]] = [
                ("INSERT INTO rentals (id, station, created) VALUES (?,?,?)", ("r1", "s1", 1.0)),
                ("INSERT INTO no_such_table VALUES (1)", ())]
            try:
                store._exec_script(steps)  # type: ignore[arg-type]
            except sqlite3.OperationalError:
                pass
            assert store._query("SELECT count(*) FROM rentals") == [(0,)]
        finally:
            writer.cancel()
            await store.close()
    run(main())


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.tuples(st.integers(1, 30), st.booleans()), max_size=300),
                min_size=1, max_size=4))
def test_events_written_many_a_statement_are_each_stored_once_in_order(
        tmp_path_factory: Any, batches: list[list[tuple[int, bool]]]) -> None:
    """Whatever mix of new events, resends and copies within one batch: each
    item's outcome is whether it was new, and the outbox has each event once,
    in the order it first came (the store writes runs of events a few
    statements at a time; a status row between them keeps its place)."""
    tmp = tmp_path_factory.mktemp("store")

    async def main() -> None:
        store = SqliteStore(tmp / "edge.db", ("city", "city-mqtt"))
        await store.open()
        writer = asyncio.create_task(store.run())
        seen: set[int] = set()
        order: list[str] = []
        try:
            for batch in batches:
                items: list[Any] = []
                expect: list[bool] = []
                for seq, status_after in batch:
                    items.append(_event(seq, outbox=f'{{"seq":{seq}}}'))
                    expect.append(seq not in seen)
                    if seq not in seen:
                        order.append(f"ev:d1:e1:{seq}")
                    seen.add(seq)
                    if status_after:  # a station's status between the events
                        items.append(OutboxRecord("status", f"status:s{seq}", "s1", "{}"))
                        expect.append(True)
                        if f"status:s{seq}" not in order:
                            order.append(f"status:s{seq}")
                assert await store.submit_many(items) == expect
            for up in ("city", "city-mqtt"):
                rows = await store.outbox_batch(up, 10_000)
                assert [r.key for r in rows] == order
        finally:
            writer.cancel()
            await store.close()
    run(main())


@given(st.integers(0, 3000), st.sampled_from([1, 2, 64, 256]))
def test_chunks_cover_every_row_once_in_a_few_shapes(n: int, most: int) -> None:
    rows = list(range(n))
    chunks = list(_chunks(rows, most))
    assert [x for c in chunks for x in c] == rows
    assert {len(c) for c in chunks} <= {most >> k for k in range(most.bit_length())}


def test_the_outbox_is_read_and_deleted_by_index_whatever_its_size(tmp_path: Path) -> None:
    """A lane's batch is a range of an index and its delete a lookup by id: neither
    sorts nor walks the lane, so a long outage's backlog costs no more a batch
    than a short one's (SQLite chose a sort of the whole lane once)."""
    traced: list[str] = []

    async def main() -> None:
        store = SqliteStore(tmp_path / "edge.db", ("city",))
        await store.open()
        writer = asyncio.create_task(store.run())
        try:
            await store.submit_many([_event(seq) for seq in range(1, 50)])
            assert store._db is not None and store._reader is not None
            for db in (store._db, store._reader):
                db.set_trace_callback(traced.append)
            rows = await store.outbox_batch("city", 10, after=3)
            assert [r.id for r in rows] == list(range(4, 14))
            assert await store.outbox_done("city", [(r.id, r.version) for r in rows]) == 0
            for db in (store._db, store._reader):
                db.set_trace_callback(None)
                for sql in traced:
                    if sql.startswith(("SELECT", "DELETE")) and "outbox" in sql:
                        plan = " ".join(str(r[3]) for r in db.execute(
                            "EXPLAIN QUERY PLAN " + sql.replace("?", "0")))
                        assert "TEMP B-TREE" not in plan and "SCAN" not in plan, (sql, plan)
        finally:
            writer.cancel()
            await store.close()
    run(main())
