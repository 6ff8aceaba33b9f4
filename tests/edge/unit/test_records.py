"""The store's records (edge/core/records.py)."""

from __future__ import annotations

import dataclasses

from edge.core.records import EventRecord, RentalCompletion


def test_an_event_to_deliver_keeps_every_field_and_sets_its_outbox_and_rental() -> None:
    """to_deliver builds the record field by field (faster than dataclasses.replace):
    a field added to EventRecord and forgotten there fails here."""
    rec = EventRecord("dock-1", "e1", 7, "s1", "rented", 3, "0B01", "code", 10.5, 9.5,
                      None, True, None)
    fields = [f.name for f in dataclasses.fields(EventRecord)]
    # Every field of the source differs from its default: one dropped would show.
    assert all(getattr(rec, f) != f_.default for f, f_ in
               zip(fields, dataclasses.fields(EventRecord), strict=True)
               if f not in ("outbox", "rental"))
    rental = RentalCompletion("r-1", "s1", "{}", None)
    out = rec.to_deliver('{"type":"rented"}', rental)
    assert out == dataclasses.replace(rec, outbox='{"type":"rented"}', rental=rental)
    assert rec.to_deliver(None, None) == rec
