"""The simulator's audit: did every rent and return a dock accepted reach the
backend exactly once? Computed from each party's own records, not from the
edge's counters:

- accepted: the events each dock logged as journaled (its console log, kept
  across restarts and power cuts, on its flash folder);
- in the docks' journals: accepted and not yet acked by the edge (still on
  their way);
- stored at the edge: its database's events table;
- received by the backend: the backend's events, by (device, epoch, seq).

lost = accepted, and neither at the backend nor still on a dock's flash or in
the edge's outbox; duplicated = an event the backend stored twice.

Counts are not enough: the events must also tell what physically happened
(`stories`). Per slot, from each dock's own log (its events and the unlocks it
was sent, in order): a return only into an empty slot, a rental only from a
full one and only after an unlock (a bike leaving without one is a theft
alarm, `fault forced_removal`). Per bike, from the backend's events in the
order they happened: rented and returned alternate. Per dock: no event's time
runs backwards. Each wrong story is one line naming the dock and the seq."""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hardware.sim.backend import DevBackend
from hardware.sim.devices import SimDock

if TYPE_CHECKING:
    from hardware.sim.city import City
    from hardware.sim.town import Town

_LOGGED = re.compile(r"^I \d+ dock: event (\w+) slot=\d+ bike=\S+ seq=(\d+)$", re.M)
# What a dock's story is made of: its events and the unlocks it was sent.
_STORY = re.compile(r"^I \d+ dock: (?:event (\w+) slot=(\d+) bike=(\S+) seq=(\d+)"
                    r"|command \d+ unlock slot=(\d+))$", re.M)
Key = tuple[str, int]  # (device, seq); a dock's epoch lasts as long as its flash


@dataclass
class Audit:
    accepted: set[Key] = field(default_factory=set)
    on_docks: set[Key] = field(default_factory=set)  # still in the docks' journals
    at_edge: set[Key] = field(default_factory=set)
    in_outbox: set[Key] = field(default_factory=set)
    at_backend: set[Key] = field(default_factory=set)
    duplicated: int = 0  # events the backend stored more than once
    duplicate_deliveries: int = 0  # resends the backend recognised and dropped
    wrong: list[str] = field(default_factory=list)  # stories the physical world forbids

    @property
    def in_flight(self) -> set[Key]:
        return (self.accepted - self.at_backend) & (self.on_docks | self.in_outbox)

    @property
    def lost(self) -> set[Key]:
        return self.accepted - self.at_backend - self.on_docks - self.in_outbox

    def ok(self) -> bool:
        return not self.lost and not self.duplicated and not self.wrong

    def table(self) -> str:
        rows = [("accepted by docks", len(self.accepted)),
                ("stored at the edge", len(self.at_edge & self.accepted)),
                ("received by the backend", len(self.at_backend & self.accepted)),
                ("still in flight", len(self.in_flight)),
                ("lost", len(self.lost)),
                ("duplicated at the backend", self.duplicated),
                ("resends the backend dropped", self.duplicate_deliveries),
                ("wrong stories (slot, bike, time)", len(self.wrong))]
        width = max(len(r[0]) for r in rows)
        out = [f"  {name:<{width}}  {n}" for name, n in rows]
        if self.lost:
            out.append("  lost: " + ", ".join(f"{d}#{s}" for d, s in sorted(self.lost)[:10]))
        out += [f"  wrong: {w}" for w in self.wrong[:10]]
        return "Audit (rent/return/fault events):\n" + "\n".join(out)

    def merge(self, other: Audit, site: str) -> None:
        """Another site's audit into this one (a city's), its devices named
        by site: two towns both have a dock-001."""
        def named(keys: set[Key]) -> set[Key]:
            return {(f"{site}/{dev}", seq) for dev, seq in keys}
        for name in ("accepted", "on_docks", "at_edge", "in_outbox", "at_backend"):
            getattr(self, name).update(named(getattr(other, name)))
        self.duplicated += other.duplicated
        self.duplicate_deliveries = other.duplicate_deliveries  # the backend's, city-wide
        self.wrong += [f"{site}/{w}" for w in other.wrong]


def journal_pending(journal: Path) -> set[int]:
    """Seqs in a dock's flash journal not yet acked (lib/journal.py's files)."""
    seqs: set[int] = set()
    events, acks = journal / "events", journal / "acks"
    if events.exists():
        for line in events.read_text(errors="replace").splitlines():
            head = line.split(" ", 1)[0]
            if head.isdigit():
                seqs.add(int(head))
    if acks.exists():
        seqs -= {int(x) for x in acks.read_text(errors="replace").split() if x.isdigit()}
    return seqs


def audit(docks: list[SimDock], edge_db: Path, backend: DevBackend | None,
          site: str | None = None) -> Audit:
    a = Audit()
    for d in docks:
        if d.log_path.is_file():
            text = d.log_path.read_text(errors="replace")
            a.accepted |= {(d.dev, int(seq)) for _, seq in _LOGGED.findall(text)}
        journal = d.flash / "journal"
        a.on_docks |= {(d.dev, s) for s in journal_pending(journal)}
    if edge_db.exists():
        db = sqlite3.connect(f"file:{edge_db}?mode=ro", uri=True)
        try:
            a.at_edge = {(str(r[0]), int(r[1])) for r in
                         db.execute("SELECT device, seq FROM events")}
            for (key,) in db.execute("SELECT key FROM outbox WHERE kind = 'event'"):
                _, dev, _, seq = str(key).split(":")
                a.in_outbox.add((dev, int(seq)))
        finally:
            db.close()
    if backend is not None:
        seen = Counter((str(e.get("device")), int(e.get("seq", -1)))
                       for e in backend.events(site))
        a.at_backend = set(seen)
        a.duplicated = sum(n - 1 for n in seen.values())
        a.duplicate_deliveries = int(backend.stats.get("duplicates", 0))
        events = backend.events(site)
        codes = {(str(e.get("device")), int(e.get("seq", -1))): e.get("code") for e in events}
        for d in docks:
            if d.log_path.is_file():
                a.wrong += slot_story(d.dev, d.log_path.read_text(errors="replace"), codes)
        a.wrong += bike_and_time_story(events)
    return a


def slot_story(dev: str, log: str, codes: dict[Key, str | None]) -> list[str]:
    """What a dock's own log says happened at each slot, checked against what a
    slot can physically do (codes: each event's fault code, from the backend)."""
    wrong: list[str] = []
    full: dict[int, bool] = {}  # slot -> a bike in it (unknown until its first event)
    unlocked: set[int] = set()  # slots sent an unlock since their last event
    for m in _STORY.finditer(log):
        if m.group(5) is not None:
            unlocked.add(int(m.group(5)))
            continue
        ev, slot, bike, seq = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
        if ev == "returned":
            if full.get(slot) is True:
                wrong.append(f"{dev} seq {seq}: bike {bike} returned into slot {slot}, "
                             "which already held a bike")
            full[slot] = True
        elif ev == "rented":
            if full.get(slot) is False:
                wrong.append(f"{dev} seq {seq}: bike {bike} rented from slot {slot}, "
                             "which was empty")
            if slot not in unlocked:
                wrong.append(f"{dev} seq {seq}: bike {bike} rented from slot {slot} with no "
                             "unlock sent (a bike leaving unasked is a theft alarm)")
            full[slot] = False
        elif codes.get((dev, seq)) == "forced_removal":
            full[slot] = False
        unlocked.discard(slot)
    return wrong


def bike_and_time_story(events: list[dict[str, object]]) -> list[str]:
    """Per bike, its returns and its departures (rented, or a theft alarm)
    balance within one, whatever order the docks heard them in; per dock, no
    time the dock stamped runs backwards (by sequence number, within one
    journal epoch; a second's leeway, as a dock stamps whole seconds)."""
    wrong: list[str] = []
    balance: Counter[str] = Counter()  # bike -> returns minus departures

    def when(e: dict[str, object]) -> float:
        at = e.get("at")
        return float(at) if isinstance(at, int | float) else 0.0
    for e in events:
        bike, kind = e.get("bike"), e.get("type")
        if isinstance(bike, str) and bike:
            if kind == "returned":
                balance[bike] += 1
            elif kind == "rented" or e.get("code") == "forced_removal":
                balance[bike] -= 1
    wrong += [f"bike {b}: {n:+d} returns more than departures" for b, n in
              sorted(balance.items()) if abs(n) > 1]
    by_dock: dict[tuple[str, str], list[dict[str, object]]] = {}
    for e in events:
        # Only times the dock stamped: one the edge gave on receipt (the dock had
        # not heard the edge's clock since it booted) is later than the event.
        if e.get("type") in ("rented", "returned", "fault") and e.get("clock") == "dock":
            by_dock.setdefault((str(e.get("device")), str(e.get("epoch"))), []).append(e)
    for (dev, _), evs in by_dock.items():
        evs.sort(key=lambda e: int(str(e.get("seq", 0))))
        for before, after in itertools.pairwise(evs):
            if when(after) < when(before) - 1.0:
                wrong.append(f"{dev} seq {after.get('seq')}: happened at {when(after):.0f}, "
                             f"before seq {before.get('seq')} at {when(before):.0f}")
    return wrong


async def settle(measure: Callable[[], Audit], limit_s: float = 60.0,
                 beyond_the_site: bool = False) -> Audit:
    """Audit again each second (up to limit_s) until nothing a dock accepted is
    on its way and no dock accepted anything new since the last look: a rental
    the riders left mid-way still unlocks its slot, and the dock's event comes
    a moment later (seen: an audit between the two missed it, the next found
    it in flight). The table says what was still in flight if the wait ran out.
    beyond_the_site: events also travel where the audit cannot see (the city
    tier, between the sites and the backend): wait while any is not at the
    backend yet, not only while a site still holds it."""
    deadline = time.monotonic() + limit_s
    a = measure()
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        before, a = a, measure()
        if not a.in_flight and not (beyond_the_site and a.lost) \
                and a.accepted == before.accepted:
            break
    return a


async def settle_and_audit(town: Town, limit_s: float = 60.0) -> Audit:
    return await settle(lambda: audit(town.docks, town.dir / "edge.db", town.backend), limit_s)


def audit_city(city: City) -> Audit:
    total = Audit()
    for town in city.towns:
        total.merge(audit(town.docks, town.dir / "edge.db", city.backend, town.spec.site),
                    town.spec.site)
    return total


async def settle_and_audit_city(city: City, limit_s: float = 60.0) -> Audit:
    return await settle(lambda: audit_city(city), limit_s, beyond_the_site=True)
