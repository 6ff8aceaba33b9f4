"""Rentals and reservations as a state machine, one row per rental id.

The backend authorises a rental (id, station, optionally a slot) or a
reservation (the same with `hold_min`); a rental may name the reservation it
takes. Each id is a row with its state and deadline, stored before anything is
sent to a dock, so an edge that restarts resumes every rental where it stood:

    claimed --pick, persist--> unlocking --"rented" event--> done (rented)
       |                          |  deadline passed ---------> done (not_taken)
       |                          '  dock refused/unreachable -> done (its error)
       +--pick, persist--> holding --deadline passed, slot released--> done (expired)
       |                          '--taken by a later rental--> done (taken)
       '--no slot, malformed, restarted before any send-----> done (its error)

This module decides; edge/app/rentals.py carries the decisions out (store,
commands, timers) and the unit tests drive it with plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.core.errors import Rejected
from edge.core.stations import Stations

CLAIMED = "claimed"  # the id is taken; nothing has been sent to a dock
UNLOCKING = "unlocking"  # unlock sent to (device, slot): the bike may leave until deadline
HOLDING = "holding"  # reserved: the slot is disabled at the dock until deadline
DONE = "done"  # the outcome is stored (and queued for the backend)
ACTIVE = (CLAIMED, UNLOCKING, HOLDING)
MAX_HOLD_MIN = 60


@dataclass
class Rental:
    id: str
    station: str
    state: str = CLAIMED
    device: str = ""
    slot: int | None = None
    deadline: float = 0.0  # wall clock: unlocking -> not_taken, holding -> expired
    created: float = 0.0
    result: dict[str, Any] | None = None  # the outcome once done
    notice: dict[str, Any] | None = field(default=None, compare=False)  # "reserved" answer


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


def outcome(site: str, r: Rental, ok: bool, now: float, **fields: Any) -> dict[str, Any]:
    """A rental's answer for the backend (cloud_bridge formats it)."""
    out: dict[str, Any] = {"rental_id": r.id, "station": r.station, "site": site, "ok": ok}
    if r.slot is not None:
        out["slot"] = r.slot
    out.update(fields)
    out["at"] = now
    return out


class RentalBook:
    """The active rentals (claimed, unlocking, holding), by id and by the slot
    each occupies; loaded from the store at start."""

    def __init__(self, stations: Stations, site: str) -> None:
        self.stations = stations
        self.site = site
        self.active: dict[str, Rental] = {}
        # Done by a dock's event, not yet stored (edge/app/rentals.py takes them).
        self.finished_by_event: dict[str, Rental] = {}

    def load(self, rentals: list[Rental]) -> None:
        for r in rentals:
            if r.state in ACTIVE:
                self.active[r.id] = r

    def busy(self) -> set[tuple[str, int]]:
        return {(r.device, r.slot) for r in self.active.values()
                if r.slot is not None and r.state in (UNLOCKING, HOLDING)}

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

    def holding(self, reservation_id: str) -> Rental | None:
        r = self.active.get(reservation_id)
        return r if r is not None and r.state == HOLDING else None

    def unlocking(self, r: Rental, device: str, slot: int, deadline: float) -> None:
        r.state, r.device, r.slot, r.deadline = UNLOCKING, device, slot, deadline
        self.active[r.id] = r

    def hold(self, r: Rental, device: str, slot: int, deadline: float) -> None:
        r.state, r.device, r.slot, r.deadline = HOLDING, device, slot, deadline
        self.active[r.id] = r

    def finish(self, r: Rental, result: dict[str, Any]) -> None:
        r.state, r.result = DONE, result
        self.active.pop(r.id, None)

    def reopen(self, r: Rental) -> None:
        """A completion that was not stored (its event's transaction failed): the
        rental is unlocking again, so the dock's resent event completes it."""
        r.state, r.result = UNLOCKING, None
        self.active[r.id] = r

    def bike_left(self, dev: str, slot: int, bike: str | None, now: float) -> str | None:
        """A dock's "rented" event: the rental unlocking that slot is done.
        Returns its id (the event names it for the backend)."""
        for r in self.active.values():
            if r.state == UNLOCKING and r.device == dev and r.slot == slot:
                self.finish(r, outcome(self.site, r, True, now, state="rented", device=dev,
                                       bike=bike))
                self.finished_by_event[r.id] = r
                return r.id
        return None

    def due(self, now: float) -> list[Rental]:
        """Rentals whose deadline has passed (the caller expires them)."""
        return [r for r in self.active.values()
                if r.state in (UNLOCKING, HOLDING) and r.deadline <= now]

    def next_deadline(self) -> float | None:
        ds = [r.deadline for r in self.active.values() if r.state in (UNLOCKING, HOLDING)]
        return min(ds) if ds else None
