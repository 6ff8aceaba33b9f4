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
the edge's outbox; duplicated = an event the backend stored twice."""

from __future__ import annotations

import asyncio
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

    @property
    def in_flight(self) -> set[Key]:
        return (self.accepted - self.at_backend) & (self.on_docks | self.in_outbox)

    @property
    def lost(self) -> set[Key]:
        return self.accepted - self.at_backend - self.on_docks - self.in_outbox

    def ok(self) -> bool:
        return not self.lost and not self.duplicated

    def table(self) -> str:
        rows = [("accepted by docks", len(self.accepted)),
                ("stored at the edge", len(self.at_edge & self.accepted)),
                ("received by the backend", len(self.at_backend & self.accepted)),
                ("still in flight", len(self.in_flight)),
                ("lost", len(self.lost)),
                ("duplicated at the backend", self.duplicated),
                ("resends the backend dropped", self.duplicate_deliveries)]
        width = max(len(r[0]) for r in rows)
        out = [f"  {name:<{width}}  {n}" for name, n in rows]
        if self.lost:
            out.append("  lost: " + ", ".join(f"{d}#{s}" for d, s in sorted(self.lost)[:10]))
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
    return a


async def settle(measure: Callable[[], Audit], limit_s: float = 60.0) -> Audit:
    """Audit again each second (up to limit_s) until nothing a dock accepted is
    on its way and no dock accepted anything new since the last look: a rental
    the riders left mid-way still unlocks its slot, and the dock's event comes
    a moment later (seen: an audit between the two missed it, the next found
    it in flight). The table says what was still in flight if the wait ran out."""
    deadline = time.monotonic() + limit_s
    a = measure()
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        before, a = a, measure()
        if not a.in_flight and a.accepted == before.accepted:
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
    return await settle(lambda: audit_city(city), limit_s)
