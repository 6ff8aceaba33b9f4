"""Carries out the ingest rules (edge/core/ingest.py): takes each inbound
message off the transports' queue, asks the rules what to do, and does it:
writes to the store, sends acks in order and only after their event is
committed, answers commands' waiters, tells the backend a station changed."""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

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
from edge.core.messages import ClockSync, DownMessage, Hello, Lookup, to_wire
from edge.core.metrics import Metrics
from edge.core.ports import Inbound, Reply
from edge.core.ratelog import RateLimitedLog
from edge.core.records import EventRecord, OutboxRecord, StoreItem
from edge.core.stations import StationStatus

log = logging.getLogger("edge")
ACKS_IN_FLIGHT = 256  # acks sent and not yet confirmed by the transport


class Store(Protocol):
    def submit(self, item: StoreItem) -> asyncio.Future[bool]: ...


class BackendFormat(Protocol):
    """The backend's JSON for what the edge queues (cloud_bridge/backend_format.py)."""

    def event(self, rec: EventRecord, rental_id: str | None) -> str: ...

    def station(self, status: StationStatus, version: int) -> str: ...


@dataclass(frozen=True, slots=True)
class _Send:
    """One message for a device, sent in queue order; an ack waits for its
    event's commit first (`stored`)."""
    device: str
    reply: Reply
    msg: DownMessage
    stored: asyncio.Future[bool] | None = None
    event: EventRecord | None = None


class IngestLoop:
    def __init__(self, ingest: Ingest, store: Store, links: DeviceLinks, metrics: Metrics,
                 backend: BackendFormat | None,
                 on_counter_floor: Callable[[str, int], bool],
                 on_hello: Callable[[Hello], None],
                 on_lookup: Callable[[str, Lookup, Reply], None],
                 on_rental_done: Callable[[str], None]) -> None:
        self.ingest = ingest
        self.store = store
        self.links = links
        self.metrics = metrics
        self.backend = backend
        self._on_counter_floor = on_counter_floor
        self._on_hello = on_hello
        self._on_lookup = on_lookup
        self._on_rental_done = on_rental_done
        self.inbound: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=10_000)
        self._sends: asyncio.Queue[_Send] = asyncio.Queue()
        self._warn = RateLimitedLog(log)  # bad input: a few lines a minute per reason
        self._events_log = RateLimitedLog(log, burst=20, window_s=10.0)
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []  # live pages
        self.alarms: dict[str, float] = {}  # name -> since (a technician acts on these)
        # Progress, for the watchdog (edge/core/liveness.py): items handled, replies sent.
        self.handled = 0
        self.replied = 0

    async def dispatch(self) -> None:
        while True:
            item = await self.inbound.get()
            self.handled += 1
            try:
                effects = self.ingest.handle(item.device, item.transport, item.received,
                                             item.msg)
                for e in effects:
                    self.apply(e, item)
            except Rejected as exc:
                self.metrics.inc("rx.rejected", exc.reason)
                self._warn.warning(exc.reason, "rejected %s from %s via %s: %s",
                                   type(item.msg).__name__.lower(), item.device[:64],
                                   item.transport, exc)
            except Exception:  # a bug here must not stop the edge
                self.metrics.inc("rx.error")
                log.exception("error handling %s from %s", type(item.msg).__name__,
                              item.device)

    def apply(self, e: Effect, item: Inbound) -> None:
        if isinstance(e, Reachable):
            self.links.heard(e.device, item.reply)
        elif isinstance(e, StoreEvent):
            rec = e.record
            if self.backend is not None:
                rec = replace(rec, outbox=self.backend.event(rec, e.rental_id))
            self._sends.put_nowait(_Send(item.device, item.reply, e.ack,
                                         self.store.submit(rec), rec))
            if e.rental_id is not None:
                self._on_rental_done(e.rental_id)
        elif isinstance(e, StoreState):
            self.store.submit(e.record)
        elif isinstance(e, StationChanged):
            self.station_changed(e.station)
        elif isinstance(e, AskHello):
            self._sends.put_nowait(_Send(e.device, item.reply,
                                         self.links.new_command("hello")))
        elif isinstance(e, SyncClock):
            self._sends.put_nowait(_Send(e.device, item.reply, ClockSync(e.now)))
        elif isinstance(e, CommandAnswered):
            self.links.answered(e.result)
        elif isinstance(e, CounterFloor):
            if not self._on_counter_floor(e.device, e.ctr):
                self.metrics.inc("rx.rejected", "counter_floor")
        elif isinstance(e, Booted):
            self._on_hello(e.hello)
        elif isinstance(e, LookupAsked):
            self._on_lookup(e.device, e.lookup, item.reply)

    def station_changed(self, station: str) -> None:
        stations = self.ingest.stations
        if station not in stations.by_id:
            return  # a kiosk: no station to report
        self.notify("state", {"station": station})
        if self.backend is None:
            return
        body = self.backend.station(stations.by_id[station].status(stations.started),
                                    stations.version)
        # Coalesced in the outbox: the backend gets the newest per station, in order.
        self.store.submit(OutboxRecord("status", f"status:{station}", station, body))

    def notify(self, kind: str, payload: dict[str, Any]) -> None:
        for fn in self.listeners:
            fn(kind, payload)

    def replies_waiting(self) -> int:
        return self._sends.qsize()

    async def drained(self, timeout_s: float) -> None:
        """At shutdown: let stored events be acked before the transports go."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._sends.join()
        except TimeoutError:
            pass

    async def sender(self) -> None:
        # Acks go out in order, each only after its event is stored on disk. They
        # are not waited for one by one: an MQTT ack's PUBACK is a broker round
        # trip, and waiting for each capped ingest at ~1,500 events/s
        # (bench/ingest.py). A lost ack costs a resend, refused as a duplicate.
        sending: set[asyncio.Task[None]] = set()
        while True:
            if len(sending) >= ACKS_IN_FLIGHT:
                await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
            s = await self._sends.get()
            self.replied += 1
            try:
                if s.stored is not None and s.event is not None \
                        and not await self._stored(s.stored, s.event):
                    continue
                if not getattr(s.reply, "blocks", True):
                    await s.reply(to_wire(s.msg))  # queued at once (an MQTT reply)
                    continue
                t = asyncio.create_task(s.reply(to_wire(s.msg)))
                sending.add(t)
                t.add_done_callback(sending.discard)
            finally:
                self._sends.task_done()

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
            self.notify("event", {"dev": ev.device, "ev": ev.kind, "slot": ev.slot,
                                  "bike": ev.bike, "seq": ev.seq, "epoch": ev.epoch})
        else:
            self.metrics.inc("events.duplicate")
        return True

