"""Carries out the ingest rules (edge/core/ingest.py): takes each inbound
message off the transports' queue, asks the rules what to do, and does it:
writes to the store, posts acks through the one door to the devices
(edge/app/links.py) gated on their event's commit, answers commands' waiters,
tells the backend a station changed."""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from edge.app.links import DeviceLinks
from edge.core.errors import Rejected
from edge.core.ingest import (
    AskHello,
    Booted,
    CommandAnswered,
    CounterFloor,
    Effect,
    Ingest,
    LookupAsked,
    Reachable,
    StationChanged,
    StoreEvent,
    StoreState,
    SyncClock,
)
from edge.core.messages import ClockSync, Hello, Lookup
from edge.core.metrics import Metrics
from edge.core.ports import Inbound
from edge.core.ratelog import RateLimitedLog
from edge.core.records import EventRecord, OutboxRecord, RentalCompletion, StoreItem
from edge.core.stations import StationStatus

log = logging.getLogger("edge")

# Inbound messages handled in one store transaction, at most. 250, not 1,000: the
# next batch is handled while the last one commits, and the turns of the loop stay
# short for the reading and the bridge (bench/ingest.py and bench/peer.py, +6-14%).
BATCH = 250


class Store(Protocol):
    def submit(self, item: StoreItem) -> asyncio.Future[bool]: ...

    def submit_many(self, items: list[StoreItem]) -> asyncio.Future[list[bool]]:
        """One transaction: each item's outcome (False: a duplicate event)."""


class RentalCompletions(Protocol):
    """The rental desk (edge/app/rentals.py), as the ingest loop needs it."""

    def completion(self, rental_id: str) -> RentalCompletion | None: ...

    def stored(self, rental_id: str, ok: bool) -> None: ...


class BackendFormat(Protocol):
    """The backend's JSON for what the edge queues (cloud_bridge/backend_format.py)."""

    def event(self, rec: EventRecord, rental_id: str | None) -> str: ...

    def station(self, status: StationStatus, version: int) -> str: ...


class IngestLoop:
    def __init__(self, ingest: Ingest, store: Store, links: DeviceLinks, metrics: Metrics,
                 backend: BackendFormat | None,
                 on_counter_floor: Callable[[str, int], bool],
                 on_hello: Callable[[Hello], None],
                 on_lookup: Callable[[str, Lookup], None],
                 rentals: RentalCompletions) -> None:
        self.ingest = ingest
        self.store = store
        self.links = links
        self.metrics = metrics
        self.backend = backend
        self._on_counter_floor = on_counter_floor
        self._on_hello = on_hello
        self._on_lookup = on_lookup
        self.rentals = rentals
        self.inbound: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=10_000)
        self._warn = RateLimitedLog(log)  # bad input: a few lines a minute per reason
        self._events_log = RateLimitedLog(log, burst=20, window_s=10.0)
        # Told when a station's slots change (the rental desk waits for slot reports, the
        # bridge republishes GBFS); the runtime sets it.
        self.on_station_changed: Callable[[], None] = lambda: None
        self.alarms: dict[str, float] = {}  # name -> since (a technician acts on these)
        # Progress, for the watchdog (edge/core/liveness.py): items handled.
        self.handled = 0
        self._writes: _Writes | None = None  # the batch being handled

    async def dispatch(self) -> None:
        """Handles what has come in, as many messages a turn as wait (up to BATCH):
        one store transaction, one gate for their acks and one callback for their
        outcome, instead of a future, a callback and a coroutine per event (an
        outage's backlog comes thousands at a time; bench/ingest.py)."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.inbound.get()]
            while len(batch) < BATCH and not self.inbound.empty():
                batch.append(self.inbound.get_nowait())
            self.handle_batch(batch, loop.create_future())

    def handle_batch(self, batch: list[Inbound], gate: asyncio.Future[bool]) -> None:
        """Applies each message's effects; the acks of its events wait on `gate`,
        set once the batch's writes are committed (True) or refused (False)."""
        writes = _Writes(gate)
        self._writes = writes
        try:
            for item in batch:
                self._handle(item, writes)
        finally:
            self._writes = None
        if not writes.items:
            gate.set_result(True)
            return
        fut = self.store.submit_many(writes.items)
        fut.add_done_callback(functools.partial(self._committed, writes))

    def _handle(self, item: Inbound, writes: _Writes) -> None:
        self.handled += 1
        settle_later = False
        try:
            effects = self.ingest.handle(item.device, item.transport, item.received, item.msg)
            for e in effects:
                settle_later |= self.apply(e, item, writes)
        except Rejected as exc:
            self.metrics.inc("rx.rejected", exc.reason)
            self._warn.warning(exc.reason, "rejected %s from %s via %s: %s",
                               type(item.msg).__name__.lower(), item.device[:64],
                               item.transport, exc)
        except Exception:  # a bug here must not stop the edge
            self.metrics.inc("rx.error")
            log.exception("error handling %s from %s", type(item.msg).__name__, item.device)
        finally:
            if item.done is not None and not settle_later:
                item.done()

    def apply(self, e: Effect, item: Inbound, writes: _Writes) -> bool:
        """Carries out one effect; True when it settles the item itself (an
        event: once its commit is known)."""
        if isinstance(e, Reachable):
            self.links.heard(e.device, item.reply)
        elif isinstance(e, StoreEvent):
            rec = e.record
            if self.backend is not None or e.rental_id is not None:
                # Its outbox row and the rental's completion go in its own transaction.
                rec = rec.to_deliver(
                    self.backend.event(rec, e.rental_id) if self.backend is not None else None,
                    self.rentals.completion(e.rental_id) if e.rental_id is not None else None)
            writes.events.append((len(writes.items), rec, item.done))
            writes.items.append(rec)
            self.links.post(item.device, e.ack, gate=writes.gate, reply=item.reply)
            # Stored or refused, the broker may let it go then (item.done): a refused
            # event stays on its dock's flash, unacked, and comes again from there.
            return True
        elif isinstance(e, StoreState):
            writes.items.append(e.record)
        elif isinstance(e, StationChanged):
            self.station_changed(e.station)
        elif isinstance(e, AskHello):
            self.links.post(e.device, self.links.new_command("hello"), reply=item.reply)
        elif isinstance(e, SyncClock):
            self.links.post(e.device, ClockSync(e.now), reply=item.reply)
        elif isinstance(e, CommandAnswered):
            self.links.answered(e.result)
        elif isinstance(e, CounterFloor):
            if not self._on_counter_floor(e.device, e.ctr):
                self.metrics.inc("rx.rejected", "counter_floor")
        elif isinstance(e, Booted):
            self._on_hello(e.hello)
        elif isinstance(e, LookupAsked):
            self._on_lookup(e.device, e.lookup)
        return False

    def station_changed(self, station: str) -> None:
        stations = self.ingest.stations
        if station not in stations.by_id:
            return  # a kiosk: no station to report
        self.on_station_changed()
        if self.backend is None:
            return
        body = self.backend.station(stations.by_id[station].status(stations.started),
                                    stations.version)
        # Coalesced in the outbox: the backend gets the newest per station, in order.
        rec = OutboxRecord("status", f"status:{station}", station, body)
        if self._writes is not None:
            self._writes.items.append(rec)  # in the batch's transaction, in its order
        else:
            self.store.submit(rec)

    def _committed(self, writes: _Writes, fut: asyncio.Future[list[bool]]) -> None:
        """A batch's transaction ended: count and log its events, open their acks'
        gate (or keep it shut), tell the rental desk, let the broker have them."""
        exc = asyncio.CancelledError() if fut.cancelled() else fut.exception()
        ok = exc is None
        if exc is not None:
            # The docks keep their events on flash until acked: nothing is lost,
            # each comes again (docs/deploy.md, "Full disk").
            self.metrics.inc("store.error", n=len(writes.events))
            if "full" in str(exc) or getattr(exc, "errno", None) == errno.ENOSPC:
                self.metrics.inc("store.full", n=len(writes.events))
                if writes.events:
                    self.alarms["disk_full"] = writes.events[0][1].received
            self._warn.warning("store", "%d events (the first from %s) not stored (%s): "
                               "no ack, their docks keep them and send them again",
                               len(writes.events), writes.events[0][1].device
                               if writes.events else "-", exc)
        else:
            if writes.events:  # an event stored again: there is room
                self.alarms.pop("disk_full", None)
            results = fut.result()
            now = time.time()
            stored = [ev for i, ev, _ in writes.events if results[i]]
            if stored:
                self.metrics.inc("events.stored", n=len(stored))
            if len(stored) < len(writes.events):
                self.metrics.inc("events.duplicate", n=len(writes.events) - len(stored))
            for ev in stored:
                # From the dock's own stamp where its clock is synced, else from arrival.
                self.metrics.observe("event_to_store", now - (ev.happened or ev.received))
            self._events_log.info_each("event", "event %s %s slot %d bike %s (seq %d)", [
                (ev.device, ev.kind, ev.slot, ev.bike, ev.seq) for ev in stored])
        if not writes.gate.done():
            writes.gate.set_result(ok)
        for _, ev, done in writes.events:
            if ev.rental is not None:
                self.rentals.stored(ev.rental.id, ok)
            if done is not None:
                done()


@dataclass(slots=True)
class _Writes:
    """One batch's store writes, in order, and its events' places among them."""
    gate: asyncio.Future[bool]
    items: list[StoreItem] = field(default_factory=list)
    events: list[tuple[int, EventRecord, Callable[[], None] | None]] = \
        field(default_factory=list)
