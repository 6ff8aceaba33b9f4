"""Rentals and reservations as a transition table, one row per rental id.

The backend authorises a rental (id, station, optionally a slot) or a
reservation (the same with `hold_min`); a rental may name the reservation it
takes. Every input (a request, a dock's answer to a command, the bike leaving,
a deadline, a restart) moves one rental along a row of TRANSITIONS and returns
the effects to carry out, in order: save the row, send a command, wait for a
slot, publish an outcome, answer the request. A move the table does not hold
raises IllegalTransition, so a bug shows where it happens instead of leaving a
rental in a state no rule expects.

    claimed --pick--> unlocking --bike left--> done (rented)
       |                 |  deadline ---------> done (not_taken)
       |                 '  dock refused -----> done (its error)
       +--pick--> holding --deadline--> expiring --slot released--> done (expired)
       |             '--taken by a later rental--> done (taken)
       +--reservation named--> releasing --slot enabled--> relocking --bike locked--> unlocking
       '--no slot, restarted before any send--> done (its error)

The row is saved before each command goes out (a restart knows a bike may
leave); releasing, relocking and expiring live in memory only (a restart finds
them claimed or holding). This module decides and edge/app/rentals.py carries
the effects out; tests/edge/unit/test_rentals.py drives it with plain values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from edge.core.errors import Rejected
from edge.core.stations import Stations

CLAIMED = "claimed"  # the id is taken; nothing has been sent to a dock
RELEASING = "releasing"  # taking a reservation: its slot is being enabled again
RELOCKING = "relocking"  # ... and the dock is to report the bike locked
UNLOCKING = "unlocking"  # unlock sent to (device, slot): the bike may leave until deadline
HOLDING = "holding"  # reserved: the slot is disabled at the dock until deadline
EXPIRING = "expiring"  # the hold ran out: its slot is being enabled again
DONE = "done"  # the outcome is stored (and queued for the backend)
ACTIVE = (CLAIMED, UNLOCKING, HOLDING)  # what a stored row may be, short of done
PROMISED = (RELEASING, RELOCKING, UNLOCKING, HOLDING, EXPIRING)  # a slot is taken
MAX_HOLD_MIN = 60
RESUME_GRACE_S = 30.0  # after a restart, docks reconnect and resend journaled events
RELOCK_WAIT_S = 5.0  # a released slot relocks its bike before it is unlocked

# (state, input) -> the state it leads to. Anything else is a bug.
TRANSITIONS: dict[tuple[str, str], str] = {
    (CLAIMED, "unlock"): UNLOCKING,
    (CLAIMED, "hold"): HOLDING,
    (CLAIMED, "take"): RELEASING,
    (CLAIMED, "refused"): DONE,
    (CLAIMED, "restarted"): DONE,
    (RELEASING, "sent"): RELOCKING,
    (RELEASING, "failed"): DONE,
    (RELOCKING, "relocked"): UNLOCKING,
    (UNLOCKING, "sent"): UNLOCKING,
    (UNLOCKING, "failed"): DONE,
    (UNLOCKING, "bike_left"): DONE,
    (UNLOCKING, "deadline"): DONE,
    (UNLOCKING, "restarted"): UNLOCKING,
    (HOLDING, "sent"): HOLDING,
    (HOLDING, "failed"): DONE,
    (HOLDING, "taken"): DONE,
    (HOLDING, "deadline"): EXPIRING,
    (HOLDING, "restarted"): HOLDING,
    (EXPIRING, "sent"): DONE,
    (EXPIRING, "failed"): DONE,
    # The bike left before the dock's answer to its unlock arrived.
    (DONE, "sent"): DONE,
    (DONE, "failed"): DONE,
    # The event that completed it was not stored: the dock sends it again.
    (DONE, "unstored"): UNLOCKING,
}


class IllegalTransition(Exception):
    """An input the rental's state does not allow (a bug, not a user's mistake)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the backend hears of a rental (cloud_bridge/backend_format.py
    formats it): its end, or the answer to a request still under way."""
    rental_id: str
    station: str
    ok: bool
    at: float
    state: str | None = None  # rented, unlocked, reserved, expired, taken
    err: str | None = None  # why not: no_bike, not_taken, lock_jammed, ...
    slot: int | None = None
    device: str | None = None
    bike: str | None = None
    until: float | None = None  # a reservation's end
    by: str | None = None  # the rental that took a reservation
    detail: str | None = None  # what was malformed

    def fields(self) -> dict[str, Any]:
        """The fields that say something (the stored and the backend's JSON)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_fields(cls, d: dict[str, Any]) -> Outcome:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Rental:
    id: str
    station: str
    state: str = CLAIMED
    device: str = ""
    slot: int | None = None
    deadline: float = 0.0  # wall clock: unlocking -> not_taken, holding -> expired
    created: float = 0.0
    result: Outcome | None = None  # the outcome once done
    notice: Outcome | None = None  # the "reserved" answer
    sending: bool = False  # a command is out: its answer comes before the deadline counts


# -- effects: what the app carries out, in the order given ------------------------------
@dataclass(frozen=True, slots=True)
class Save:
    rental: Rental  # a copy, as it is to be stored


@dataclass(frozen=True, slots=True)
class Send:
    """A command to the rental's dock; its answer is the next input (sent)."""
    rental_id: str
    device: str
    op: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WaitSlot:
    """Until the dock reports the slot as `want` or timeout_s; then relocked()."""
    rental_id: str
    device: str
    slot: int
    want: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Publish:
    outcome: Outcome
    key: str  # the outbox's idempotency key


@dataclass(frozen=True, slots=True)
class Ended:
    """A rental is done (counted and logged); `released` for an expired hold."""
    outcome: Outcome
    released: bool | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to the request that started these effects."""
    outcome: Outcome


Effect = Save | Send | WaitSlot | Publish | Ended | Answer


@dataclass(frozen=True, slots=True)
class RentalRequest:
    id: str
    station: str
    slot: int | None = None
    hold_min: float | None = None
    reservation_id: str | None = None


def parse_request(req: Any) -> RentalRequest:
    """The backend's rental message, checked; Rejected("malformed") otherwise."""
    if not isinstance(req, dict):
        raise Rejected("malformed", "a rental is a JSON object")
    rid, station, slot = req.get("rental_id"), req.get("station"), req.get("slot")
    hold, resv = req.get("hold_min"), req.get("reservation_id")
    if not isinstance(rid, str) or not rid or len(rid) > 128 or not isinstance(station, str) \
            or len(station) > 64:
        raise Rejected("malformed", "rental_id and station are strings")
    if slot is not None and (not isinstance(slot, int) or isinstance(slot, bool)
                             or not 0 <= slot < 256):
        raise Rejected("malformed", "slot is a number 0..255")
    if hold is not None and (not isinstance(hold, int | float) or isinstance(hold, bool)
                             or not 0 < hold <= MAX_HOLD_MIN):
        raise Rejected("malformed", f"hold_min is 0..{MAX_HOLD_MIN}")
    if resv is not None and not isinstance(resv, str):
        raise Rejected("malformed", "reservation_id is a string")
    return RentalRequest(rid, station, slot, None if hold is None else float(hold), resv)


def malformed(raw: Any, detail: str, now: float) -> list[Effect]:
    """A rental the backend sent that cannot be read: the answer, and the
    backend hears it too when it has an id to hear it by (docs/bridge.md)."""
    rid = raw.get("rental_id") if isinstance(raw, dict) else None
    station = raw.get("station") if isinstance(raw, dict) else None
    rid = rid if isinstance(rid, str) and 0 < len(rid) <= 128 else ""
    out = Outcome(rid, station[:64] if isinstance(station, str) else "", False, now,
                  err="malformed", detail=detail)
    effects: list[Effect] = [Publish(out, f"rental:{rid}")] if rid else []
    return [*effects, Answer(out)]


def answer_again(stored: Rental) -> Outcome:
    """A rental id seen before: its stored answer, or in_progress."""
    if stored.result is not None:
        return stored.result
    if stored.state == HOLDING and stored.notice is not None:
        return stored.notice
    return Outcome(stored.id, stored.station, False, stored.created, err="in_progress")


class RentalMachine:
    """The rentals not yet done (and those done whose command is still out),
    by id, with the rules that move them."""

    def __init__(self, stations: Stations, timeout_s: float = 60.0) -> None:
        self.stations = stations
        self.timeout_s = timeout_s
        self.rentals: dict[str, Rental] = {}
        # Done by a dock's event whose transaction is not yet committed.
        self.completing: dict[str, Rental] = {}

    # -- reading -------------------------------------------------------------------------
    @property
    def active(self) -> dict[str, Rental]:
        return {i: r for i, r in self.rentals.items() if r.state != DONE}

    def busy(self) -> set[tuple[str, int]]:
        return {(r.device, r.slot) for r in self.rentals.values()
                if r.slot is not None and r.state in PROMISED}

    def holding(self, reservation_id: str) -> Rental | None:
        r = self.rentals.get(reservation_id)
        # Not while its own hold is being sent: it is not a reservation yet.
        return r if r is not None and r.state == HOLDING and not r.sending else None

    def next_deadline(self) -> float | None:
        ds = [r.deadline for r in self.rentals.values()
              if r.state in (UNLOCKING, HOLDING) and not r.sending]
        return min(ds) if ds else None

    def pick(self, station: str, slot: int | None) -> tuple[str, int]:
        """A slot holding a bike at an online dock, not promised to another
        rental; Rejected with the reason the backend hears otherwise."""
        st = self.stations.by_id.get(station)
        if st is None:
            raise Rejected("unknown_station", station)
        busy = self.busy()
        for dev, d in st.devices.items():
            if not d.online:
                continue
            for i, c in enumerate(d.slots):
                if c == "L" and (dev, i) not in busy and (slot is None or slot == i):
                    return dev, i
        if not any(d.online for d in st.devices.values()):
            raise Rejected("station_offline", station)
        raise Rejected("no_bike", station)

    # -- inputs --------------------------------------------------------------------------
    def restart(self, rows: list[Rental], now: float) -> list[Effect]:
        """At start: the rows the last run left short of done. Unlocking ones
        wait a grace for their bike (the dock resends the event); held slots
        stay held until their deadline; one claimed before anything was sent
        is answered now, so a redelivery never hears `in_progress` for ever."""
        out: list[Effect] = []
        for r in rows:
            self.rentals[r.id] = r
            if r.state == UNLOCKING:
                r.deadline = max(r.deadline, now + min(self.timeout_s, RESUME_GRACE_S))
            if r.state == CLAIMED:
                out += self._end(r, "restarted", self._outcome(r, now, err="edge_restarted"))
            else:
                self._move(r, "restarted")
        return out

    def request(self, req: RentalRequest, now: float) -> list[Effect]:
        """A new rental id (the store has claimed it)."""
        r = Rental(req.id, req.station, created=now)
        self.rentals[r.id] = r
        if req.reservation_id is not None and req.hold_min is None:
            return self._take(r, req.reservation_id, now)
        try:
            dev, slot = self.pick(r.station, req.slot)
        except Rejected as exc:
            return self._end(r, "refused", self._outcome(r, now, err=exc.reason), answer=True)
        if req.hold_min is None:
            return self._unlock(r, "unlock", dev, slot, now)
        self._move(r, "hold")
        r.device, r.slot, r.deadline = dev, slot, now + req.hold_min * 60
        r.notice = self._outcome(r, now, ok=True, state="reserved", device=dev, until=r.deadline)
        # Saved before the dock holds it: a restart releases it in time.
        return [Save(replace(r)), self._send(r, "set_slot", slot=slot, enabled=False)]

    def sent(self, rental_id: str, err: str | None, now: float) -> list[Effect]:
        """The dock's answer to the rental's command: None if it did it, else
        the error the backend hears."""
        r = self.rentals[rental_id]
        r.sending = False
        before = r.state
        if before == EXPIRING:
            return self._end(r, "sent" if err is None else "failed",
                             self._outcome(r, now, state="expired", err="reservation_expired"),
                             key=f"rental:{r.id}:expired", released=err is None)
        if err is not None and before in (RELEASING, UNLOCKING, HOLDING):
            reason = "dock_unreachable" if before == RELEASING else err
            return self._end(r, "failed", self._outcome(r, now, err=reason), answer=True)
        self._move(r, "sent" if err is None else "failed")
        if before == RELEASING:
            assert r.slot is not None
            return [WaitSlot(r.id, r.device, r.slot, "L", RELOCK_WAIT_S)]
        if before == HOLDING:
            assert r.notice is not None
            return [Publish(r.notice, f"rental:{r.id}"), Answer(r.notice)]
        if r.state == DONE and r.id not in self.completing:
            del self.rentals[r.id]  # its end came while the command was out
        # Unlocked: the dock's "rented" event or the deadline ends it.
        return [Answer(self._outcome(r, now, ok=True, state="unlocked", device=r.device))]

    def relocked(self, rental_id: str, now: float) -> list[Effect]:
        """The reservation's slot reads locked again (or the wait ran out):
        unlock it for the rental that named it."""
        r = self.rentals[rental_id]
        assert r.slot is not None
        return self._unlock(r, "relocked", r.device, r.slot, now)

    def bike_left(self, dev: str, slot: int, bike: str | None, now: float) -> str | None:
        """A dock's "rented" event: the rental unlocking that slot is done, to be
        stored with the event (completion_stored says whether it was). Returns
        its id (the event names it for the backend); None for a bike that left
        without one (a theft alarm, or a walk-in the backend matches)."""
        for r in self.rentals.values():
            if r.state == UNLOCKING and r.device == dev and r.slot == slot:
                self._move(r, "bike_left")
                r.result = self._outcome(r, now, ok=True, state="rented", device=dev, bike=bike)
                self.completing[r.id] = r
                return r.id
        return None

    def completion_stored(self, rental_id: str, ok: bool) -> list[Effect]:
        """The event's transaction committed (ok) or failed: in that case the
        rental is unlocking again, so the dock's resent event completes it."""
        r = self.completing.pop(rental_id, None)
        if r is None:
            return []
        if not ok:
            self._move(r, "unstored")
            r.result = None
            return []
        assert r.result is not None
        if not r.sending:
            self.rentals.pop(r.id, None)
        return [Ended(r.result)]

    def due(self, now: float) -> list[Effect]:
        """Every deadline passed: an unlocked bike not taken, a hold run out."""
        out: list[Effect] = []
        for r in list(self.rentals.values()):
            if r.state not in (UNLOCKING, HOLDING) or r.sending or r.deadline > now:
                continue
            if r.state == UNLOCKING:
                out += self._end(r, "deadline", self._outcome(r, now, err="not_taken"))
            else:
                self._move(r, "deadline")
                assert r.slot is not None
                out.append(self._send(r, "set_slot", slot=r.slot, enabled=True))
        return out

    # -- steps -----------------------------------------------------------------------------
    def _move(self, r: Rental, event: str) -> None:
        to = TRANSITIONS.get((r.state, event))
        if to is None:
            raise IllegalTransition(f"rental {r.id}: {event} while {r.state}")
        r.state = to

    def _take(self, r: Rental, reservation_id: str, now: float) -> list[Effect]:
        held = self.holding(reservation_id)
        if held is None:
            return self._end(r, "refused", self._outcome(r, now, err="no_reservation"),
                             answer=True)
        self._move(held, "taken")
        held.result = self._outcome(held, now, ok=True, state="taken", by=r.id)
        del self.rentals[held.id]
        self._move(r, "take")
        r.device, r.slot = held.device, held.slot
        assert r.slot is not None
        return [Save(replace(held)), self._send(r, "set_slot", slot=r.slot, enabled=True)]

    def _unlock(self, r: Rental, event: str, dev: str, slot: int, now: float) -> list[Effect]:
        self._move(r, event)
        r.device, r.slot, r.deadline = dev, slot, now + self.timeout_s
        # Saved before the unlock goes out: a restart knows a bike may leave.
        return [Save(replace(r)), self._send(r, "unlock", slot=slot)]

    def _send(self, r: Rental, op: str, **args: Any) -> Send:
        r.sending = True
        return Send(r.id, r.device, op, args)

    def _end(self, r: Rental, event: str, out: Outcome, key: str | None = None,
             answer: bool = False, released: bool | None = None) -> list[Effect]:
        self._move(r, event)
        r.result = out
        if not r.sending:
            del self.rentals[r.id]
        effects: list[Effect] = [Save(replace(r)), Ended(out, released),
                                 Publish(out, key or f"rental:{r.id}")]
        return [*effects, Answer(out)] if answer else effects

    @staticmethod
    def _outcome(r: Rental, now: float, ok: bool = False, **more: Any) -> Outcome:
        return Outcome(r.id, r.station, ok, now, slot=r.slot, **more)
