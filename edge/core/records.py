"""What the edge keeps: the rows its store writes and reads, as plain values
(the SQLite adapter, edge/adapters/store.py, maps them to tables)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RentalCompletion:
    """A rental the event completes (a "rented" after its unlock): written in the
    event's own transaction, so the two are stored together or not at all."""
    id: str
    station: str
    result: str  # the outcome, as the rentals table keeps it (JSON)
    outbox: str | None  # the backend's JSON of it, queued with it (None: no uplink)


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and
# two of these are made for every event (~3 us of a backlog's ~20 us on the loop's
# thread; ~0.8 us so). Nothing changes one after it is made.
@dataclass(slots=True)
class EventRecord:
    device: str
    epoch: str
    seq: int
    station: str
    kind: str
    slot: int
    bike: str | None
    code: str | None
    received: float  # the edge's clock when it arrived
    happened: float | None = None  # the dock's stamp (edge's clock); None: not synced
    outbox: str | None = None  # the backend's JSON, queued in the same transaction
    # The dock's stamp was outside what the edge can vouch for and `happened` is the
    # edge's bound instead (edge/core/ingest.py _when).
    corrected: bool = False
    rental: RentalCompletion | None = None

    def to_deliver(self, outbox: str | None, rental: RentalCompletion | None) -> EventRecord:
        """The same event with what goes in its transaction: its outbox row's body and
        the rental it completes. (dataclasses.replace is ~5x slower: a tenth of a
        backlog's ingest; tests/edge/unit/test_records.py holds every field kept.)"""
        return EventRecord(self.device, self.epoch, self.seq, self.station, self.kind,
                           self.slot, self.bike, self.code, self.received, self.happened,
                           outbox, self.corrected, rental)


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """Something for the backend. Status is coalesced: one row per station and
    uplink holds the newest; events and rental results are never dropped."""
    kind: str  # "status", "rental"
    key: str  # idempotency key; for status "status:<station>"
    station: str
    body: str


@dataclass(frozen=True, slots=True)
class StateRecord:
    device: str
    boot: int
    n: int
    slots: str
    reported: float


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An outbox row as an uplink delivers it; (id, version) deletes it."""
    id: int
    version: int
    kind: str
    key: str
    body: str
    created: float


StoreItem = EventRecord | StateRecord | OutboxRecord
