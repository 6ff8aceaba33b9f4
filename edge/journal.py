"""The edge's durable journal (SQLite, WAL): every rent/return/fault event a
dock sent, stored once per (device, epoch, seq) before the dock is told it
may forget it, and each device's last reported slot states so a restarted
edge still knows its stations. Writes are batched by one writer task; SQLite
runs in a worker thread so the event loop never blocks on disk."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("edge.journal")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL, epoch TEXT NOT NULL, seq INTEGER NOT NULL,
    station TEXT NOT NULL, kind TEXT NOT NULL, slot INTEGER NOT NULL,
    bike TEXT, code TEXT, received REAL NOT NULL,
    UNIQUE (device, epoch, seq)
);
CREATE TABLE IF NOT EXISTS device_state (
    device TEXT PRIMARY KEY, boot INTEGER NOT NULL, n INTEGER NOT NULL,
    slots TEXT NOT NULL, reported REAL NOT NULL
);
"""

_BATCH = 1000


@dataclass(frozen=True)
class EventRecord:
    device: str
    epoch: str
    seq: int
    station: str
    kind: str
    slot: int
    bike: str | None
    code: str | None
    received: float


@dataclass(frozen=True)
class StateRecord:
    device: str
    boot: int
    n: int
    slots: str
    reported: float


Item = EventRecord | StateRecord


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._q: asyncio.Queue[tuple[Item, asyncio.Future[bool]]] = asyncio.Queue()
        self.batches = 0

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a process crash (SIGKILL); only
        # an OS crash or power cut can lose the last transactions.
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        self._db = db

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)

    def submit(self, item: Item) -> asyncio.Future[bool]:
        """Queue a write; the future is True once stored (False: a duplicate event)."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._q.put_nowait((item, fut))
        return fut

    async def run(self) -> None:
        """The writer task: drains the queue in batches, one transaction each."""
        while True:
            first = await self._q.get()
            batch = [first]
            while len(batch) < _BATCH and not self._q.empty():
                batch.append(self._q.get_nowait())
            try:
                results = await asyncio.to_thread(self._write, [i for i, _ in batch])
            except sqlite3.Error as exc:
                log.error("journal write failed (%d items): %s", len(batch), exc)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            for (_, fut), ok in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(ok)

    def _write(self, items: list[Item]) -> list[bool]:
        db = self._db
        assert db is not None, "journal not open"
        out = []
        db.execute("BEGIN")
        try:
            for it in items:
                if isinstance(it, EventRecord):
                    cur = db.execute(
                        "INSERT OR IGNORE INTO events (device, epoch, seq, station, kind, slot,"
                        " bike, code, received) VALUES (?,?,?,?,?,?,?,?,?)",
                        (it.device, it.epoch, it.seq, it.station, it.kind, it.slot, it.bike,
                         it.code, it.received))
                    out.append(cur.rowcount == 1)
                else:
                    db.execute(
                        "INSERT INTO device_state (device, boot, n, slots, reported)"
                        " VALUES (?,?,?,?,?) ON CONFLICT(device) DO UPDATE SET boot=excluded.boot,"
                        " n=excluded.n, slots=excluded.slots, reported=excluded.reported",
                        (it.device, it.boot, it.n, it.slots, it.reported))
                    out.append(True)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return out

    # -- reads (tests, API, start-up) ---------------------------------------
    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        assert self._db is not None, "journal not open"
        return self._db.execute(sql, args).fetchall()

    async def events(self, limit: int = 1000) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(
            self._query, "SELECT device, epoch, seq, station, kind, slot, bike, code, received"
            " FROM events ORDER BY id DESC LIMIT ?", (limit,))
        keys = ("device", "epoch", "seq", "station", "kind", "slot", "bike", "code", "received")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def states(self) -> list[StateRecord]:
        rows = await asyncio.to_thread(
            self._query, "SELECT device, boot, n, slots, reported FROM device_state")
        return [StateRecord(*r) for r in rows]
