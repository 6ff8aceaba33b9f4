"""Carries out what the rentals' transition table (edge/core/rentals.py)
decides: it stores each row before acting on it, sends commands through the
one door (edge/app/links.py), waits on slots, queues outcomes for the backend
and keeps the one deadline task. It decides nothing itself: every answer it
gets goes back to the table as the next input."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from edge.app.links import DeviceLinks
from edge.core.errors import Rejected
from edge.core.metrics import Metrics
from edge.core.records import OutboxRecord, RentalCompletion, StoreItem
from edge.core.rentals import (
    Answer,
    Effect,
    Ended,
    Outcome,
    Publish,
    Rental,
    RentalMachine,
    Save,
    Send,
    WaitSlot,
    answer_again,
    malformed,
    parse_request,
)
from edge.core.stations import Stations

log = logging.getLogger("edge.rentals")


class RentalStore(Protocol):
    async def rental_claim(self, rental_id: str, station: str, now: float) -> Rental | None: ...

    async def rental_save(self, r: Rental) -> None: ...

    async def rentals_active(self) -> list[Rental]: ...

    def submit(self, item: StoreItem) -> asyncio.Future[bool]: ...


class RentalDesk:
    def __init__(self, machine: RentalMachine, store: RentalStore, links: DeviceLinks,
                 stations: Stations, metrics: Metrics,
                 format_outcome: Callable[[Outcome], str] | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.machine = machine
        self.store = store
        self.links = links
        self.stations = stations
        self.metrics = metrics
        self._format = format_outcome
        self._now = clock
        self._changed = asyncio.Event()  # a deadline was set or a rental ended
        self._slots = asyncio.Event()  # a dock reported its slots

    async def resume(self) -> None:
        """At start: the rentals the last run left short of done."""
        rows = await self.store.rentals_active()
        await self._carry_out(self.machine.restart(rows, self._now()))
        if rows:
            log.info("rentals resumed after a restart: %d active", len(self.machine.active))

    async def rent(self, raw: Any) -> Outcome:
        """One rental or reservation from the backend: its answer (the backend
        also hears how it ends, through the outbox)."""
        try:
            req = parse_request(raw)
        except Rejected as exc:
            self.metrics.inc("rentals.rejected", "malformed")
            effects = malformed(raw, str(exc), self._now())
        else:
            stored = await self.store.rental_claim(req.id, req.station, self._now())
            if stored is not None:
                self.metrics.inc("rentals.duplicate")
                return answer_again(stored)
            effects = self.machine.request(req, self._now())
        answer = await self._carry_out(effects)
        assert answer is not None, "a request's effects end in its answer"
        return answer

    def slots_changed(self) -> None:
        """Called on every station change (the runtime wires it)."""
        self._slots.set()

    def completion(self, rental_id: str) -> RentalCompletion | None:
        """Ingest matched a "rented" event to this rental: its outcome, to be
        written in the event's own transaction with the row for the backend. A
        crash can then never keep the event and lose the completion, and later
        report `not_taken` for a bike that left."""
        r = self.machine.completing.get(rental_id)
        if r is None or r.result is None:
            return None
        return RentalCompletion(r.id, r.station, json.dumps(r.result.fields()),
                                self._format(r.result) if self._format else None)

    def stored(self, rental_id: str, ok: bool) -> None:
        """The event's transaction committed (ok) or failed."""
        for effect in self.machine.completion_stored(rental_id, ok):
            if isinstance(effect, Ended):
                self._ended(effect)  # the only effect a completion has
        self._changed.set()

    async def deadlines(self) -> None:
        """The one timer task: the table's deadlines, when they come."""
        while True:
            nxt = self.machine.next_deadline()
            self._changed.clear()
            wait = 3600.0 if nxt is None else max(0.0, nxt - self._now())
            try:
                async with asyncio.timeout(min(wait, 3600.0)):
                    await self._changed.wait()
                continue
            except TimeoutError:
                pass
            await self._carry_out(self.machine.due(self._now()))

    # -- the executor ----------------------------------------------------------------------
    async def _carry_out(self, effects: list[Effect]) -> Outcome | None:
        """Each effect in order; a command's answer and a slot's wait go back
        to the table, and what it returns joins the queue."""
        answer = None
        todo = deque(effects)
        while todo:
            match todo.popleft():
                case Save(rental):
                    await self.store.rental_save(rental)
                case Send(rental_id, device, op, args):
                    err = await self._command(device, op, args)
                    todo.extend(self.machine.sent(rental_id, err, self._now()))
                case WaitSlot(rental_id, device, slot, want, timeout_s):
                    await self._slot_reads(device, slot, want, timeout_s)
                    todo.extend(self.machine.relocked(rental_id, self._now()))
                case Publish(outcome, key):
                    if self._format is not None:
                        self.store.submit(OutboxRecord("rental", key, outcome.station,
                                                       self._format(outcome)))
                case Ended() as ended:
                    self._ended(ended)
                case Answer(outcome):
                    answer = outcome
        self._changed.set()  # a deadline may count now (its command was answered)
        return answer

    def _ended(self, e: Ended) -> None:
        o = e.outcome
        self.metrics.inc("rentals", "ok" if o.ok else str(o.err))
        if e.released is not None:
            log.info("reservation %s at %s expired; slot %s %s", o.rental_id, o.station,
                     o.slot, "released" if e.released else "NOT released (dock unreachable)")
        else:
            log.info("rental %s at %s: %s", o.rental_id, o.station,
                     f"rented slot {o.slot}" if o.ok else o.err)

    async def _command(self, dev: str, op: str, args: dict[str, Any]) -> str | None:
        """None if the dock did it, else the error the backend hears."""
        try:
            res = await self.links.command(dev, op, **args)
        except (Rejected, TimeoutError):
            return "dock_unreachable"
        return None if res.ok else (res.err or "refused")

    async def _slot_reads(self, dev: str, slot: int, want: str, timeout_s: float) -> bool:
        """Until the dock reports `want` for the slot, woken by its reports."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    self._slots.clear()
                    d = self.stations.device_slots(dev)
                    if d is not None and slot < len(d.slots) and d.slots[slot] == want:
                        return True
                    await self._slots.wait()
        except TimeoutError:
            return False
