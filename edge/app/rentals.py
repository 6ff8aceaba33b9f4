"""Carries out rentals and reservations (the state machine in
edge/core/rentals.py): every step is stored before the edge acts on it, one
task keeps the deadlines, and at start the active rows are resumed, so neither
an edge restart nor a redelivered rental can leave one stuck."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from edge.app.links import DeviceLinks
from edge.core.errors import Rejected
from edge.core.metrics import Metrics
from edge.core.records import OutboxRecord, RentalCompletion, StoreItem
from edge.core.rentals import (
    CLAIMED,
    HOLDING,
    UNLOCKING,
    Rental,
    RentalBook,
    RentalRequest,
    outcome,
    parse_request,
)
from edge.core.stations import Stations

log = logging.getLogger("edge.rentals")
RESUME_GRACE_S = 30.0  # after a restart, docks reconnect and resend journaled events


class RentalStore(Protocol):
    async def rental_claim(self, rental_id: str, station: str, now: float) -> Rental | None: ...

    async def rental_save(self, r: Rental) -> None: ...

    async def rentals_active(self) -> list[Rental]: ...

    def submit(self, item: StoreItem) -> asyncio.Future[bool]: ...


class RentalDesk:
    def __init__(self, book: RentalBook, store: RentalStore, links: DeviceLinks,
                 stations: Stations, metrics: Metrics, rental_timeout_s: float,
                 format_result: Callable[[dict[str, Any]], str] | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.book = book
        self.store = store
        self.links = links
        self.stations = stations
        self.metrics = metrics
        self.timeout_s = rental_timeout_s
        self._format = format_result
        self._now = clock
        self._changed = asyncio.Event()  # a deadline was set or a rental ended
        self._slots = asyncio.Event()  # a dock reported its slots

    async def resume(self) -> None:
        """At start: the rentals the last run left active. Unlocking ones keep
        waiting for their bike (the dock resends the event); held slots stay
        held until their deadline; a rental claimed before anything was sent
        is answered now, so a redelivery never hears `in_progress` for ever."""
        rows = await self.store.rentals_active()
        now = self._now()
        for r in rows:
            if r.state == CLAIMED:
                await self._finish(r, self._result(r, False, err="edge_restarted"))
                continue
            if r.state == UNLOCKING:
                r.deadline = max(r.deadline, now + min(self.timeout_s, RESUME_GRACE_S))
            self.book.load([r])
        if rows:
            log.info("rentals resumed after a restart: %d active",
                     len(self.book.active))
        self._changed.set()

    def _result(self, r: Rental, ok: bool, **fields: Any) -> dict[str, Any]:
        return outcome(self.book.site, r, ok, self._now(), **fields)

    # -- requests from the backend ---------------------------------------------------
    async def rent(self, raw: Any) -> dict[str, Any]:
        """One rental or reservation from the backend; its outcome also goes to
        the backend through the outbox."""
        try:
            req = parse_request(raw)
        except Rejected as exc:
            self.metrics.inc("rentals.rejected", "malformed")
            rid = raw.get("rental_id") if isinstance(raw, dict) else ""
            station = raw.get("station") if isinstance(raw, dict) else ""
            result = {"rental_id": rid if isinstance(rid, str) else "", "ok": False,
                      "err": "malformed", "detail": str(exc), "site": self.book.site,
                      "at": self._now()}
            if isinstance(rid, str) and 0 < len(rid) <= 128 and self._format is not None:
                # The backend hears it too (docs/bridge.md): a rental it issued got no unlock.
                station = station if isinstance(station, str) else ""
                self.store.submit(OutboxRecord("rental", f"rental:{rid}", station[:64],
                                               self._format(result)))
            return result
        stored = await self.store.rental_claim(req.id, req.station, self._now())
        if stored is not None:
            self.metrics.inc("rentals.duplicate")
            if stored.result is not None:
                return stored.result
            if stored.state == HOLDING and stored.notice is not None:
                return stored.notice
            return {"rental_id": req.id, "ok": False, "err": "in_progress"}
        r = Rental(req.id, req.station, created=self._now())
        if req.hold_min is not None:
            return await self._reserve(r, req)
        if req.reservation_id is not None:
            return await self._take_reserved(r, req.reservation_id)
        return await self._unlock(r, req.slot, None)

    async def _unlock(self, r: Rental, slot: int | None,
                      reserved: tuple[str, int] | None) -> dict[str, Any]:
        try:
            dev, i = reserved or self.book.pick(r.station, slot)
        except Rejected as exc:
            return await self._finish(r, self._result(r, False, err=exc.reason))
        # Stored before the unlock goes out: a restart knows a bike may leave.
        self.book.unlocking(r, dev, i, self._now() + self.timeout_s)
        await self.store.rental_save(r)
        self._changed.set()
        err = await self._command(dev, "unlock", slot=i)
        if err is not None and r.state == UNLOCKING:
            return await self._finish(r, self._result(r, False, err=err))
        # The dock's "rented" event (ingest) or the deadline ends it.
        return {"rental_id": r.id, "station": r.station, "ok": True, "state": "unlocked",
                "device": dev, "slot": i}

    async def _reserve(self, r: Rental, req: RentalRequest) -> dict[str, Any]:
        assert req.hold_min is not None
        try:
            dev, i = self.book.pick(r.station, req.slot)
        except Rejected as exc:
            return await self._finish(r, self._result(r, False, err=exc.reason))
        until = self._now() + req.hold_min * 60
        self.book.hold(r, dev, i, until)
        r.notice = self._result(r, True, state="reserved", device=dev, until=until)
        await self.store.rental_save(r)  # before the dock holds it: a restart releases it
        self._changed.set()
        err = await self._command(dev, "set_slot", slot=i, enabled=False)
        if err is not None:
            return await self._finish(r, self._result(r, False, err=err))
        self._publish(r, r.notice, f"rental:{r.id}")
        return r.notice

    async def _take_reserved(self, r: Rental, reservation_id: str) -> dict[str, Any]:
        held = self.book.holding(reservation_id)
        if held is None:
            return await self._finish(r, self._result(r, False, err="no_reservation"))
        dev, i = held.device, held.slot
        assert i is not None
        self.book.finish(held, self._result(held, True, state="taken", by=r.id))
        await self.store.rental_save(held)
        r.slot = i
        if await self._command(dev, "set_slot", slot=i, enabled=True) is not None:
            return await self._finish(r, self._result(r, False, err="dock_unreachable"))
        # The dock relocks the held bike (L again) before it can be unlocked.
        await self._slot_reads(dev, i, "L", 5.0)
        return await self._unlock(r, None, (dev, i))

    def slots_changed(self) -> None:
        """Called on every station change (the runtime wires it)."""
        self._slots.set()

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

    async def _command(self, dev: str, op: str, **args: Any) -> str | None:
        """None if the dock did it, else the error the backend hears."""
        try:
            res = await self.links.command(dev, op, **args)
        except (Rejected, TimeoutError):
            return "dock_unreachable"
        return None if res.ok else (res.err or "refused")

    # -- the dock's answer and the deadlines -------------------------------------------
    def completion(self, rental_id: str) -> RentalCompletion | None:
        """Ingest matched a "rented" event to this rental (the book marked it
        done): its outcome, to be written in the event's own transaction with
        the row for the backend. A crash can then never keep the event and lose
        the completion, and later report `not_taken` for a bike that left."""
        r = self.book.finished_by_event.get(rental_id)
        if r is None or r.result is None:
            return None
        return RentalCompletion(r.id, r.station, json.dumps(r.result),
                                self._format(r.result) if self._format else None)

    def stored(self, rental_id: str, ok: bool) -> None:
        """The event's transaction committed (ok) or failed."""
        r = self.book.finished_by_event.pop(rental_id, None)
        if r is None:
            return
        if not ok:
            self.book.reopen(r)  # the dock keeps the event and sends it again
        else:
            self.metrics.inc("rentals", "ok")
            log.info("rental %s at %s: rented slot %s", r.id, r.station, r.slot)
        self._changed.set()

    async def deadlines(self) -> None:
        """The one timer task: expires unlocking rentals whose bike was not taken
        and reservations whose hold ran out (releasing the slot)."""
        while True:
            nxt = self.book.next_deadline()
            self._changed.clear()
            wait = 3600.0 if nxt is None else max(0.0, nxt - self._now())
            try:
                async with asyncio.timeout(min(wait, 3600.0)):
                    await self._changed.wait()
                continue
            except TimeoutError:
                pass
            for r in self.book.due(self._now()):
                if r.state == UNLOCKING:
                    await self._finish(r, self._result(r, False, err="not_taken"))
                else:
                    await self._expire(r)

    async def _expire(self, r: Rental) -> None:
        assert r.slot is not None
        released = await self._command(r.device, "set_slot", slot=r.slot, enabled=True) is None
        log.info("reservation %s at %s expired; slot %d %s", r.id, r.station, r.slot,
                 "released" if released else "NOT released (dock unreachable)")
        result = self._result(r, False, state="expired", err="reservation_expired")
        await self._finish(r, result, key=f"rental:{r.id}:expired")

    async def _finish(self, r: Rental, result: dict[str, Any],
                      key: str | None = None) -> dict[str, Any]:
        self.book.finish(r, result)
        await self.store.rental_save(r)
        self._changed.set()
        self.metrics.inc("rentals", "ok" if result["ok"] else str(result.get("err")))
        log.info("rental %s at %s: %s", r.id, r.station,
                 f"rented slot {r.slot}" if result["ok"] else result.get("err"))
        self._publish(r, result, key or f"rental:{r.id}")
        return result

    def _publish(self, r: Rental, result: dict[str, Any], key: str) -> None:
        if self._format is not None:
            self.store.submit(OutboxRecord("rental", key, r.station, self._format(result)))

