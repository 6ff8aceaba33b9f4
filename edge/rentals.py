"""Rentals: the backend authorises one (rental id, station, optionally a slot),
the edge picks a slot with a bike, unlocks it, and reports the outcome:
`rented` once the bike leaves, or a failure (no bike, lock jammed, not taken,
unknown station, offline dock). A rental id is handled once, even when the
backend delivers it again or the edge restarted meanwhile (SQLite).

Reservations take the same path with `hold_min`: the slot is disabled at the
dock (the bike is held, not shown as available) and the answer is `reserved`;
a rental naming the `reservation_id` releases and unlocks that slot; if none
comes in time the slot is released and an `expired` result follows."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from edge.errors import Rejected
from edge.journal import OutboxRecord

if TYPE_CHECKING:
    from edge.service import EdgeService

log = logging.getLogger("edge.rentals")


class Rentals:
    def __init__(self, svc: EdgeService) -> None:
        self.svc = svc
        # (device, slot) -> (rental id, future resolved by the dock's "rented" event)
        self._waiting: dict[tuple[str, int], tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        # reservation id -> (device, slot, expiry task)
        self._held: dict[str, tuple[str, int, asyncio.Task[None]]] = {}

    def cancel_all(self) -> None:
        """Shutdown: stop the reservation timers (held slots stay held at the dock)."""
        for _, _, task in self._held.values():
            task.cancel()

    def on_rented(self, dev: str, slot: int, bike: str | None) -> str | None:
        """Called for each stored "rented" event; returns the rental id it completes."""
        w = self._waiting.pop((dev, slot), None)
        if w is None:
            return None
        rid, fut = w
        if not fut.done():
            fut.set_result({"bike": bike})
        return rid

    def _pick(self, station: str, slot: int | None) -> tuple[str, int] | str:
        st = self.svc.stations.by_id.get(station)
        if st is None:
            return "unknown_station"
        busy = set(self._waiting) | {(d, i) for d, i, _ in self._held.values()}
        for dev, d in st.devices.items():
            if not d.online:
                continue
            if slot is not None:
                if slot < len(d.slots) and d.slots[slot] == "L" and (dev, slot) not in busy:
                    return dev, slot
                continue
            for i, c in enumerate(d.slots):
                if c == "L" and (dev, i) not in busy:
                    return dev, i
        if not any(d.online for d in st.devices.values()):
            return "station_offline"
        return "no_bike"

    async def rent(self, req: dict[str, Any]) -> dict[str, Any]:
        rid = req.get("rental_id")
        station = req.get("station")
        slot = req.get("slot")
        if not isinstance(rid, str) or not rid or not isinstance(station, str) \
                or (slot is not None and (not isinstance(slot, int) or isinstance(slot, bool))):
            self.svc.metrics.inc("rentals.rejected", "malformed")
            return {"rental_id": rid if isinstance(rid, str) else "", "ok": False,
                    "err": "malformed"}
        new, stored = await self.svc.journal.rental_claim(rid, station)
        if not new:
            self.svc.metrics.inc("rentals.duplicate")
            if stored is not None:
                result: dict[str, Any] = json.loads(stored)
                return result
            return {"rental_id": rid, "ok": False, "err": "in_progress"}
        hold = req.get("hold_min")
        resv = req.get("reservation_id")
        if hold is not None:
            result = await self._reserve(rid, station, slot, hold)
        elif resv is not None:
            result = await self._take_reserved(rid, station, resv)
        else:
            result = await self._run(rid, station, slot)
        self.svc.metrics.inc("rentals", "ok" if result["ok"] else result["err"])
        log.info("rental %s at %s: %s", rid, station,
                 f"rented slot {result.get('slot')}" if result["ok"] else result["err"])
        body = json.dumps(result)
        await self.svc.journal.rental_result(rid, body)
        self.svc.journal.submit(OutboxRecord("rental", f"rental:{rid}", station, body))
        return result

    def _base(self, rid: str, station: str) -> dict[str, Any]:
        return {"rental_id": rid, "station": station, "site": self.svc.cfg.site}

    async def _reserve(self, rid: str, station: str, slot: int | None,
                       hold: Any) -> dict[str, Any]:
        base = self._base(rid, station)
        if not isinstance(hold, int | float) or isinstance(hold, bool) or not 0 < hold <= 60:
            return {**base, "ok": False, "err": "malformed", "at": time.time()}
        picked = self._pick(station, slot)
        if isinstance(picked, str):
            return {**base, "ok": False, "err": picked, "at": time.time()}
        dev, i = picked
        try:
            res = await self.svc.command(dev, "set_slot", slot=i, enabled=False)
        except (Rejected, TimeoutError):
            return {**base, "ok": False, "err": "dock_unreachable", "slot": i, "at": time.time()}
        if not res.get("ok"):
            return {**base, "ok": False, "err": res.get("err", "refused"), "slot": i,
                    "at": time.time()}
        until = time.time() + hold * 60
        task = asyncio.get_running_loop().create_task(self._expire(rid, station, dev, i,
                                                                   hold * 60),
                                                      name=f"reservation:{rid}")
        self._held[rid] = (dev, i, task)
        return {**base, "ok": True, "state": "reserved", "device": dev, "slot": i,
                "until": until, "at": time.time()}

    async def _release(self, dev: str, slot: int) -> bool:
        try:
            res = await self.svc.command(dev, "set_slot", slot=slot, enabled=True)
        except (Rejected, TimeoutError):
            return False
        return bool(res.get("ok"))

    async def _expire(self, rid: str, station: str, dev: str, slot: int, after: float) -> None:
        await asyncio.sleep(after)
        if self._held.pop(rid, None) is None:
            return
        released = await self._release(dev, slot)
        log.info("reservation %s at %s expired; slot %d %s", rid, station, slot,
                 "released" if released else "NOT released (dock unreachable)")
        body = json.dumps({**self._base(rid, station), "ok": False, "state": "expired",
                           "err": "reservation_expired", "slot": slot, "at": time.time()})
        self.svc.journal.submit(OutboxRecord("rental", f"rental:{rid}:expired", station, body))

    async def _take_reserved(self, rid: str, station: str, resv: Any) -> dict[str, Any]:
        held = self._held.pop(resv, None) if isinstance(resv, str) else None
        if held is None:
            return {**self._base(rid, station), "ok": False, "err": "no_reservation",
                    "at": time.time()}
        dev, i, task = held
        task.cancel()
        if not await self._release(dev, i):
            return {**self._base(rid, station), "ok": False, "err": "dock_unreachable",
                    "slot": i, "at": time.time()}
        # The dock relocks the held bike (LOCKED again) before it can be unlocked.
        for _ in range(100):
            st = self.svc.stations.by_id[station].devices[dev]
            if i < len(st.slots) and st.slots[i] == "L":
                break
            await asyncio.sleep(0.05)
        return await self._run(rid, station, i, reserved=(dev, i))

    async def _run(self, rid: str, station: str, slot: int | None,
                   reserved: tuple[str, int] | None = None) -> dict[str, Any]:
        base = self._base(rid, station)
        picked = reserved or self._pick(station, slot)
        if isinstance(picked, str):
            return {**base, "ok": False, "err": picked, "at": time.time()}
        dev, i = picked
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[(dev, i)] = (rid, fut)
        try:
            try:
                res = await self.svc.command(dev, "unlock", slot=i)
            except (Rejected, TimeoutError) as exc:
                return {**base, "ok": False, "err": "dock_unreachable", "slot": i,
                        "detail": str(exc), "at": time.time()}
            if not res.get("ok"):
                return {**base, "ok": False, "err": res.get("err", "refused"), "slot": i,
                        "at": time.time()}
            try:
                async with asyncio.timeout(self.svc.cfg.rental_timeout_s):
                    got = await fut
            except TimeoutError:
                return {**base, "ok": False, "err": "not_taken", "slot": i, "at": time.time()}
            return {**base, "ok": True, "state": "rented", "device": dev, "slot": i,
                    "bike": got["bike"], "at": time.time()}
        finally:
            w = self._waiting.get((dev, i))
            if w is not None and w[0] == rid:
                del self._waiting[(dev, i)]
