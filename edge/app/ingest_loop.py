"""Carries out the ingest rules (edge/core/ingest.py): takes each inbound
message off the transports' queue, asks the rules what to do, and does it:
writes to the store, posts acks through the one door to the devices
(edge/app/links.py) gated on their event's commit, answers commands' waiters,
tells the backend a station changed."""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable
from dataclasses import replace
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


class Store(Protocol):
    def submit(self, item: StoreItem) -> asyncio.Future[bool]: ...


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

    async def dispatch(self) -> None:
        while True:
            item = await self.inbound.get()
            self.handled += 1
            settle_later = False
            try:
                effects = self.ingest.handle(item.device, item.transport, item.received,
                                             item.msg)
                for e in effects:
                    settle_later |= self.apply(e, item)
            except Rejected as exc:
                self.metrics.inc("rx.rejected", exc.reason)
                self._warn.warning(exc.reason, "rejected %s from %s via %s: %s",
                                   type(item.msg).__name__.lower(), item.device[:64],
                                   item.transport, exc)
            except Exception:  # a bug here must not stop the edge
                self.metrics.inc("rx.error")
                log.exception("error handling %s from %s", type(item.msg).__name__,
                              item.device)
            finally:
                if item.done is not None and not settle_later:
                    item.done()

    def apply(self, e: Effect, item: Inbound) -> bool:
        """Carries out one effect; True when it settles the item itself (an
        event: once its commit is known)."""
        if isinstance(e, Reachable):
            self.links.heard(e.device, item.reply)
        elif isinstance(e, StoreEvent):
            rec = e.record
            if self.backend is not None:
                rec = replace(rec, outbox=self.backend.event(rec, e.rental_id))
            if e.rental_id is not None:
                # The rental's completion goes in the event's own transaction.
                rec = replace(rec, rental=self.rentals.completion(e.rental_id))
            stored = self.store.submit(rec)
            if rec.rental is not None:
                rid = rec.rental.id
                stored.add_done_callback(lambda f: self.rentals.stored(
                    rid, not f.cancelled() and f.exception() is None))
            self.links.post(item.device, e.ack, gate=lambda: self._stored(stored, rec),
                            reply=item.reply)
            if item.done is not None:
                # Stored or refused, the broker may let it go: a refused event stays
                # on its dock's flash, unacked, and comes again from there.
                done = item.done
                stored.add_done_callback(lambda _f: done())
                return True
        elif isinstance(e, StoreState):
            self.store.submit(e.record)
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
        self.store.submit(OutboxRecord("status", f"status:{station}", station, body))

    async def _stored(self, fut: asyncio.Future[bool], ev: EventRecord) -> bool:
        """Whether to ack: stored now, or stored before (a duplicate)."""
        try:
            new = await fut
        except Exception as exc:
            # The dock keeps the event on its flash until it is acked: nothing is
            # lost, it comes again (docs/deploy.md, "Full disk").
            self.metrics.inc("store.error")
            if "full" in str(exc) or getattr(exc, "errno", None) == errno.ENOSPC:
                self.metrics.inc("store.full")
                self.alarms["disk_full"] = ev.received
            self._warn.warning("store", "event from %s not stored (%s): no ack, the dock "
                               "keeps it and sends it again", ev.device, exc)
            return False
        self.alarms.pop("disk_full", None)
        if new:
            self.metrics.inc("events.stored")
            # From the dock's own stamp where its clock is synced, else from arrival.
            self.metrics.observe("event_to_store", time.time() - (ev.happened or ev.received))
            self._events_log.info("event", "event %s %s slot %d bike %s (seq %d)", ev.device,
                                  ev.kind, ev.slot, ev.bike, ev.seq)
        else:
            self.metrics.inc("events.duplicate")
        return True

