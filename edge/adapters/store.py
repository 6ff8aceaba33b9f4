"""The edge's database (SQLite, WAL): every rent/return/fault event a dock
sent, stored once per (device, epoch, seq) before the dock is told it may
forget it; the outbox to the backend; each device's last slot report, so a
restarted edge still knows its stations; rentals with their state; cached
fund answers; devices provisioned at run time. Writes are batched by one
writer task; SQLite runs in a worker thread so the loop never blocks on disk."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from edge.core.records import (
    EventRecord,
    OutboxRecord,
    OutboxRow,
    RentalCompletion,
    StateRecord,
    StoreItem,
)
from edge.core.rentals import DONE, Outcome, Rental

log = logging.getLogger("edge.store")
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL, epoch TEXT NOT NULL, seq INTEGER NOT NULL,
    station TEXT NOT NULL, kind TEXT NOT NULL, slot INTEGER NOT NULL,
    bike TEXT, code TEXT, received REAL NOT NULL, happened REAL,
    UNIQUE (device, epoch, seq)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uplink TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, station TEXT,
    body TEXT NOT NULL, created REAL NOT NULL, version INTEGER NOT NULL DEFAULT 0,
    UNIQUE (uplink, key)
);
-- A lane's rows in order: a batch read is a range of it. Without it SQLite took the
-- (uplink, key) index and sorted the whole lane for every batch (a 20,000-row
-- backlog cost ~5 us a row read; a long outage's, seconds a batch).
CREATE INDEX IF NOT EXISTS outbox_lane ON outbox (uplink, id);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY, uplink TEXT, kind TEXT, key TEXT, body TEXT,
    reason TEXT, failed REAL
);
CREATE TABLE IF NOT EXISTS funds_cache (
    token TEXT PRIMARY KEY, records TEXT NOT NULL, as_of REAL NOT NULL, fetched REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rentals (
    id TEXT PRIMARY KEY, station TEXT NOT NULL, result TEXT, created REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'claimed', device TEXT NOT NULL DEFAULT '', slot INTEGER,
    deadline REAL NOT NULL DEFAULT 0, notice TEXT
);
CREATE TABLE IF NOT EXISTS provisioned (
    device TEXT PRIMARY KEY, station TEXT NOT NULL, kind TEXT NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS device_state (
    device TEXT PRIMARY KEY, boot INTEGER NOT NULL, n INTEGER NOT NULL,
    slots TEXT NOT NULL, reported REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS funds_seen (token TEXT PRIMARY KEY, looked REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_BATCH = 1000


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One transaction, for a connection in autocommit mode (isolation_level
    None: the edge's store, the development backend), where `with db:` opens
    none and each statement commits on its own: a step that failed left the
    ones before it written (found in issue 27)."""
    db.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first write
    try:
        yield
    except BaseException:
        # SQLite may have rolled back already (it does on SQLITE_FULL): a second
        # ROLLBACK would raise and hide why the write failed.
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SqliteStore:
    def __init__(self, path: Path, uplinks: tuple[str, ...] = (),
                 max_mb: float = 2048.0) -> None:
        self.path = path
        self.uplinks = uplinks
        self.max_mb = max_mb
        # One thread owns the connection: every write, and most reads, queued on it.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        # The uplinks' reads of the outbox on a second connection and thread: in WAL
        # mode a reader sees the last commit without waiting for the writer, so an
        # outage's backlog goes out while it is still coming in (bench/peer.py: the
        # outbox's reads queued behind the events' commits held the drain to half).
        self._read_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-read")
        self._reader: sqlite3.Connection | None = None
        # One wake-up per uplink's sender (set when its outbox gains rows).
        self._outbox_changed = {u: asyncio.Event() for u in uplinks}
        self._db: sqlite3.Connection | None = None
        self._per_statement = 1  # rows in one INSERT or DELETE (_open)
        # Each entry: writes handed over together, their future, and whether it
        # takes one outcome (submit) or the list (submit_many).
        self._q: asyncio.Queue[tuple[list[StoreItem], asyncio.Future[Any], bool]] = \
            asyncio.Queue()
        self._queued = 0  # items in the queue
        self.batches = 0
        # Batches finished, written or failed (a full disk fails fast: it is not
        # a hang), and items in the one being written: the watchdog's view.
        self.finished = 0
        self._writing = 0

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit is on the disk before it returns (the WAL synced), so
        # an event acked to its dock (which then drops it from its flash) survives
        # the Pi's power being cut. NORMAL syncs only at checkpoints: a power cut
        # lost up to the kernel's writeback delay of acked events (found in
        # issue 27's profiling). Deleting delivered outbox rows is the exception
        # (_delete): losing that commit only sends them again.
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        _migrate(db)
        self._db = db
        self._per_statement = per_statement(db)
        self._limit(self.max_mb)

    def _limit(self, max_mb: float) -> None:
        """Past this size SQLite refuses writes with SQLITE_FULL, as a full disk
        does: one bound, one policy (is_full)."""
        assert self._db is not None
        page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._db.execute(f"PRAGMA max_page_count = {max(1, int(max_mb * 1048576 / page))}")

    async def set_size_limit(self, max_mb: float) -> None:
        """A new bound now (the simulator's disk-full fault; a technician's fix)."""
        self.max_mb = max_mb
        await self._run(self._limit, max_mb)

    async def size_mb(self) -> float:
        rows = await self._run(self._query, "PRAGMA page_count")
        page = await self._run(self._query, "PRAGMA page_size")
        return float(rows[0][0] * page[0][0] / 1048576)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self) -> None:
        await self._run(self._open)
        await asyncio.get_running_loop().run_in_executor(self._read_pool, self._open_reader)

    def _open_reader(self) -> None:
        # After _open: the schema and the WAL exist. Read-only: it cannot write.
        self._reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                       check_same_thread=False, isolation_level=None)

    async def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await asyncio.get_running_loop().run_in_executor(self._read_pool, reader.close)
        if self._db is not None:
            db, self._db = self._db, None
            await self._run(db.close)

    def waiting(self) -> int:
        """Writes queued or being written (the watchdog's view of the writer)."""
        return self._queued + self._writing

    def submit(self, item: StoreItem) -> asyncio.Future[bool]:
        """Queue a write; the future is True once stored (False: a duplicate event)."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._q.put_nowait(([item], fut, True))
        self._queued += 1
        return fut

    def submit_many(self, items: list[StoreItem]) -> asyncio.Future[list[bool]]:
        """Queue writes that commit together (in one transaction, with whatever
        else is queued by then); the future has each one's outcome, in order."""
        fut: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._q.put_nowait((items, fut, False))
        self._queued += len(items)
        return fut

    async def run(self) -> None:
        """The writer task: drains the queue in batches, one transaction each."""
        while True:
            entries = [await self._q.get()]
            n = len(entries[0][0])
            while n < _BATCH and not self._q.empty():
                entries.append(self._q.get_nowait())
                n += len(entries[-1][0])
            self._queued -= n
            items = [i for e in entries for i in e[0]]
            self._writing = n
            try:
                results = await self._run(self._write, items)
            except sqlite3.Error as exc:
                log.error("store write failed (%d items): %s", n, exc)
                for _, fut, _ in entries:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            finally:
                self._writing = 0
                self.finished += 1
            self.batches += 1
            if self.uplinks and any(isinstance(i, EventRecord | OutboxRecord) for i in items):
                for ev in self._outbox_changed.values():
                    ev.set()
            at = 0
            for batch, fut, single in entries:
                got = results[at:at + len(batch)]
                at += len(batch)
                if not fut.done():
                    fut.set_result(got[0] if single else got)

    def _write(self, items: list[StoreItem]) -> list[bool]:
        db = self._db
        assert db is not None, "store not open"
        out: list[bool] = []
        with transaction(db):
            run: list[EventRecord] = []  # events in a row, written together
            for it in items:
                if isinstance(it, EventRecord) and it.rental is None:
                    run.append(it)
                    continue
                if run:
                    out += self._insert_events(db, run)
                    run = []
                if isinstance(it, EventRecord):
                    out += self._insert_events(db, [it])
                    assert it.rental is not None
                    self._complete(db, it.rental, it.received)  # once, even for a resend
                elif isinstance(it, OutboxRecord):
                    now = time.time()
                    for up in self.uplinks:
                        db.execute("INSERT INTO outbox (uplink, kind, key, station, body, created)"
                                   " VALUES (?,?,?,?,?,?) ON CONFLICT(uplink, key) DO UPDATE SET"
                                   " body=excluded.body, version=version+1",
                                   (up, it.kind, it.key, it.station, it.body, now))
                    out.append(True)
                else:
                    db.execute(
                        "INSERT INTO device_state (device, boot, n, slots, reported)"
                        " VALUES (?,?,?,?,?) ON CONFLICT(device) DO UPDATE SET boot=excluded.boot,"
                        " n=excluded.n, slots=excluded.slots, reported=excluded.reported",
                        (it.device, it.boot, it.n, it.slots, it.reported))
                    out.append(True)
            if run:
                out += self._insert_events(db, run)
        return out

    def _insert_events(self, db: sqlite3.Connection, run: list[EventRecord]) -> list[bool]:
        """Events, each stored once by (device, epoch, seq), and an outbox row for each
        new one: whether each was new (False: stored before, or earlier in `run`).

        A few statements of many rows each, not one each: sqlite3 lets go of the
        GIL for every statement it steps, and while the event loop's thread is busy
        (a backlog) taking it back waits up to the switch interval (5 ms). Row by
        row, a batch's commit took seconds behind a busy loop (issue 27)."""
        top = db.execute("SELECT max(id) FROM events").fetchone()[0] or 0
        before = db.total_changes
        insert_rows(db, self._per_statement, _EVENT_ROWS, 10, [
            (e.device, e.epoch, e.seq, e.station, e.kind, e.slot, e.bike, e.code, e.received,
             e.happened) for e in run])
        if db.total_changes - before == len(run):
            new = [True] * len(run)
        else:  # some were stored already: the new ones are those past the old top id
            fresh = set(db.execute("SELECT device, epoch, seq FROM events WHERE id > ?",
                                   (top,)).fetchall())
            new = []
            for e in run:
                key = (e.device, e.epoch, e.seq)
                new.append(key in fresh)
                fresh.discard(key)  # a second copy in this run is a duplicate
        for up in self.uplinks:
            insert_rows(db, self._per_statement, _OUTBOX_ROWS, 6, [
                (up, "event", f"ev:{e.device}:{e.epoch}:{e.seq}", e.station, e.outbox,
                 e.received) for e, n in zip(run, new, strict=True)
                if n and e.outbox is not None])
        return new

    def _complete(self, db: sqlite3.Connection, c: RentalCompletion, now: float) -> None:
        """A rental done by its event, in the event's transaction: once (a resent
        event finds it done already and queues nothing again)."""
        cur = db.execute("UPDATE rentals SET state = ?, result = ? WHERE id = ? AND state != ?",
                         (DONE, c.result, c.id, DONE))
        if cur.rowcount == 1 and c.outbox is not None:
            for up in self.uplinks:
                db.execute("INSERT INTO outbox (uplink, kind, key, station, body, created)"
                           " VALUES (?,?,?,?,?,?) ON CONFLICT(uplink, key) DO UPDATE SET"
                           " body=excluded.body, version=version+1",
                           (up, "rental", f"rental:{c.id}", c.station, c.outbox, now))

    # -- reads (tests, API, start-up) ---------------------------------------
    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        assert self._db is not None, "store not open"
        return self._db.execute(sql, args).fetchall()

    async def events(self, limit: int = 1000, before: int | None = None) -> list[dict[str, Any]]:
        """Newest first; `before`: only rows with a smaller id (the next page)."""
        rows = await self._run(
            self._query, "SELECT id, device, epoch, seq, station, kind, slot, bike, code, "
            "received, happened FROM events WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before if before is not None else 1 << 62, limit))
        keys = ("id", "device", "epoch", "seq", "station", "kind", "slot", "bike", "code",
                "received", "happened")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def states(self) -> list[StateRecord]:
        rows = await self._run(
            self._query, "SELECT device, boot, n, slots, reported FROM device_state")
        return [StateRecord(*r) for r in rows]

    # -- outbox (cloud_bridge) -------------------------------------------------
    async def outbox_batch(self, uplink: str, limit: int, after: int = 0) -> list[OutboxRow]:
        rows = await asyncio.get_running_loop().run_in_executor(
            self._read_pool, self._read, "SELECT id, version, kind, key, body, created FROM"
            " outbox WHERE uplink = ? AND id > ? ORDER BY id LIMIT ?", (uplink, after, limit))
        return [OutboxRow(*r) for r in rows]

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        assert self._reader is not None, "store not open"
        return self._reader.execute(sql, args).fetchall()

    def _delete(self, uplink: str, done: list[tuple[int, int]]) -> int:
        assert self._db is not None, "store not open"
        db = self._db
        # A status row updated while it was in flight has a new version: keep it.
        # Without a sync of its own: a power cut that loses this commit only has the
        # rows sent again (the backend drops them by key); the next event's commit
        # syncs it anyway. It halved a backlog's drain (bench/peer.py) otherwise.
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            with transaction(db):
                before = db.total_changes
                # Many rows a statement, as _insert_events does, for the same reason.
                # By id (a rowid lookup each), a statement per version: with the
                # version in a row value SQLite scanned the whole lane.
                by_version: dict[int, list[int]] = {}
                for i, v in done:
                    by_version.setdefault(v, []).append(i)
                for v, ids in by_version.items():
                    for chunk in _chunks(ids, self._per_statement):
                        db.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(chunk))})"
                                   " AND uplink = ? AND version = ?", [*chunk, uplink, v])
                return len(done) - (db.total_changes - before)
        finally:
            db.execute("PRAGMA synchronous=FULL")

    async def outbox_done(self, uplink: str, done: list[tuple[int, int]]) -> int:
        return await self._run(self._delete, uplink, done)

    def _dead(self, uplink: str, rows: list[OutboxRow], reason: str) -> None:
        assert self._db is not None, "store not open"
        now = time.time()
        with transaction(self._db):
            self._db.executemany(
                "INSERT INTO dead_letter (uplink, kind, key, body, reason, failed)"
                " VALUES (?,?,?,?,?,?)", [(uplink, r.kind, r.key, r.body, reason, now)
                                          for r in rows])
            self._db.executemany("DELETE FROM outbox WHERE uplink = ? AND id = ?",
                                 [(uplink, r.id) for r in rows])

    async def outbox_dead_letter(self, uplink: str, rows: list[OutboxRow], reason: str) -> None:
        """Rows the backend refused as malformed: kept aside for a person, not retried."""
        await self._run(self._dead, uplink, rows, reason)

    async def outbox_wait(self, uplink: str, timeout_s: float) -> None:
        """Until the uplink's lane may have gained rows (or the timeout)."""
        wake = self._outbox_changed[uplink]
        wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await wake.wait()

    def outbox_poke(self, uplink: str) -> None:
        self._outbox_changed[uplink].set()

    async def outbox_stats(self, uplink: str) -> tuple[int, float | None]:
        rows = await self._run(self._query, "SELECT count(*), min(created) FROM outbox"
                               " WHERE uplink = ?", (uplink,))
        return int(rows[0][0]), rows[0][1]


    # -- kiosk fund records (edge/app/funds.py) ------------------------------------------
    async def funds_get(self, token: str) -> tuple[str, float, float] | None:
        rows = await self._run(self._query, "SELECT records, as_of, fetched FROM funds_cache"
                               " WHERE token = ?", (token,))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    async def funds_stale(self, older_than_s: float, limit: int) -> list[str]:
        rows = await self._run(self._query, "SELECT token FROM funds_cache WHERE fetched < ?"
                               " ORDER BY fetched LIMIT ?", (time.time() - older_than_s, limit))
        return [r[0] for r in rows]

    async def funds_put(self, token: str, records: str, as_of: float) -> None:
        await self._run(self._exec, "INSERT INTO funds_cache VALUES (?,?,?,?) ON CONFLICT(token)"
                        " DO UPDATE SET records=excluded.records, as_of=excluded.as_of,"
                        " fetched=excluded.fetched", (token, records, as_of, time.time()))

    async def retention(self, events_before: float, rentals_before: float,
                        dead_letter_max: int) -> tuple[int, int, int]:
        """Forget what no one needs any more, in one transaction: events
        received before `events_before` that every uplink has delivered (no
        outbox row left for them), finished rentals created before
        `rentals_before`, and dead letters beyond the newest `dead_letter_max`.
        Returns how many of each went."""
        def work() -> tuple[int, int, int]:
            assert self._db is not None, "store not open"
            with transaction(self._db):
                ev = self._db.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE received < ? "
                    "AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.key = 'ev:' || "
                    "events.device || ':' || events.epoch || ':' || events.seq) LIMIT 10000)",
                    (events_before,)).rowcount
                rn = self._db.execute("DELETE FROM rentals WHERE created < ? AND state = ?",
                                      (rentals_before, DONE)).rowcount
                dl = self._db.execute("DELETE FROM dead_letter WHERE id NOT IN (SELECT id FROM "
                                      "dead_letter ORDER BY id DESC LIMIT ?)",
                                      (dead_letter_max,)).rowcount
            return ev, rn, dl
        return await self._run(work)

    async def funds_touch(self, token: str) -> None:
        """A kiosk asked for this token now: the retention clock starts again."""
        await self._run(self._exec, "INSERT INTO funds_seen VALUES (?,?) ON CONFLICT(token)"
                        " DO UPDATE SET looked=excluded.looked", (token, time.time()))

    async def funds_purge(self, cutoff: float, cap: int) -> int:
        """Forget villagers not looked up since `cutoff` (wall clock), and the
        least recently looked-up beyond `cap`; returns how many went."""
        return await self._run(self._exec_script, [
            ("DELETE FROM funds_seen WHERE looked < ? OR token NOT IN "
             "(SELECT token FROM funds_seen ORDER BY looked DESC LIMIT ?)", (cutoff, cap)),
            ("DELETE FROM funds_cache WHERE token NOT IN (SELECT token FROM funds_seen)", ())])

    async def funds_clear(self) -> int:
        return await self._run(self._exec_script, [("DELETE FROM funds_seen", ()),
                                                   ("DELETE FROM funds_cache", ())])

    async def meta_get(self, key: str) -> str | None:
        rows = await self._run(self._query, "SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def meta_forget(self, prefix: str) -> int:
        """Forget the meta keys under a prefix; returns how many went."""
        return await self._run(self._exec, "DELETE FROM meta WHERE key LIKE ? || '%'",
                               (prefix,))

    async def meta_put(self, key: str, value: str) -> None:
        await self._run(self._exec, "INSERT INTO meta VALUES (?,?) ON CONFLICT(key)"
                        " DO UPDATE SET value=excluded.value", (key, value))

    # -- devices registered by `huimin provision` ----------------------------------
    async def provisioned_put(self, device: str, station: str, kind: str) -> None:
        await self._run(self._exec, "INSERT INTO provisioned VALUES (?,?,?,?) ON CONFLICT(device)"
                        " DO UPDATE SET station=excluded.station, kind=excluded.kind,"
                        " at=excluded.at", (device, station, kind, time.time()))

    async def provisioned_all(self) -> list[tuple[str, str, str]]:
        rows = await self._run(self._query, "SELECT device, station, kind FROM provisioned", ())
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    # -- rentals (edge/app/rentals.py) ------------------------------------------------
    def _exec(self, sql: str, args: tuple[Any, ...]) -> int:
        assert self._db is not None, "store not open"
        with transaction(self._db):
            return self._db.execute(sql, args).rowcount

    def _exec_script(self, steps: list[tuple[str, tuple[Any, ...]]]) -> int:
        """Several statements in one transaction; the last one's row count."""
        assert self._db is not None, "store not open"
        n = 0
        with transaction(self._db):
            for sql, args in steps:
                n = self._db.execute(sql, args).rowcount
        return n

    async def rental_claim(self, rental_id: str, station: str, now: float) -> Rental | None:
        """None if this id is new (now claimed); else the rental stored under it."""
        n = await self._run(self._exec, "INSERT OR IGNORE INTO rentals (id, station, created,"
                            " state) VALUES (?,?,?,'claimed')", (rental_id, station, now))
        if n == 1:
            return None
        rows = await self._run(self._query, _RENTAL_SELECT + " WHERE id = ?", (rental_id,))
        return _rental(rows[0]) if rows else None

    async def rental_save(self, r: Rental) -> None:
        """A rental's new state, durably, before the edge acts on it."""
        await self._run(self._exec, "UPDATE rentals SET state=?, device=?, slot=?, deadline=?,"
                        " result=?, notice=? WHERE id = ?",
                        (r.state, r.device, r.slot, r.deadline,
                         _outcome_json(r.result), _outcome_json(r.notice), r.id))

    async def rentals_active(self) -> list[Rental]:
        rows = await self._run(self._query, _RENTAL_SELECT + " WHERE state != ?", (DONE,))
        return [_rental(r) for r in rows]


_RENTAL_SELECT = "SELECT id, station, state, device, slot, deadline, created, result, notice" \
    " FROM rentals"


def _rental(row: tuple[Any, ...]) -> Rental:
    def outcome(text: str | None) -> Outcome | None:
        # An older version's row may lack a field the outcome now has.
        base = {"rental_id": row[0], "station": row[1], "ok": False, "at": row[6]}
        return Outcome.from_fields({**base, **json.loads(text)}) if text else None
    return Rental(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                  outcome(row[7]), outcome(row[8]))


def _outcome_json(o: Outcome | None) -> str | None:
    return json.dumps(o.fields(), ensure_ascii=False) if o is not None else None


def _migrate(db: sqlite3.Connection) -> None:
    """A database from an earlier version: events gain when they happened
    (unknown for the old ones); rentals gain their state, and a rental with
    no result was claimed and never finished (resumed at start)."""
    if "happened" not in {r[1] for r in db.execute("PRAGMA table_info(events)")}:
        db.execute("ALTER TABLE events ADD COLUMN happened REAL")
    have = {r[1] for r in db.execute("PRAGMA table_info(rentals)")}
    if "state" in have:
        return
    with transaction(db):
        for col in ("state TEXT NOT NULL DEFAULT 'claimed'", "device TEXT NOT NULL DEFAULT ''",
                    "slot INTEGER", "deadline REAL NOT NULL DEFAULT 0", "notice TEXT"):
            db.execute(f"ALTER TABLE rentals ADD COLUMN {col}")
        db.execute("UPDATE rentals SET state = 'done' WHERE result IS NOT NULL")



_EVENT_ROWS = ("INSERT OR IGNORE INTO events (device, epoch, seq, station, kind, slot, bike,"
               " code, received, happened) VALUES ")
_OUTBOX_ROWS = "INSERT OR IGNORE INTO outbox (uplink, kind, key, station, body, created) VALUES "


def per_statement(db: sqlite3.Connection) -> int:
    """Rows a statement at most: 256, or fewer where this SQLite allows fewer
    variables (999 before 3.32), a power of two."""
    rows = 256
    while rows > 1 and rows * 10 > db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER):
        rows //= 2
    return rows


def _chunks(rows: list[T], most: int) -> Iterator[list[T]]:
    """`rows` in chunks of `most`, then of falling powers of two: a handful of
    statement shapes, each prepared once and kept in sqlite3's cache."""
    at, size = 0, most
    while at < len(rows):
        while size > len(rows) - at:
            size //= 2
        yield rows[at:at + size]
        at += size


def _values(rows: int, columns: int) -> str:
    return ",".join(["(" + ",".join("?" * columns) + ")"] * rows)


def insert_rows(db: sqlite3.Connection, most: int, insert: str, columns: int,
               rows: list[tuple[Any, ...]]) -> None:
    for chunk in _chunks(rows, most):
        db.execute(insert + _values(len(chunk), columns), [x for row in chunk for x in row])
