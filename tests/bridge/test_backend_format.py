"""The backend's event JSON (cloud_bridge/backend_format.py) is written without
a dict for the common event; whatever the values, it is the encoder's bytes."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from cloud_bridge.backend_format import BackendFormat, item
from edge.core.records import EventRecord, OutboxRow

_TEXT = st.text(max_size=12) | st.sampled_from(["s0001", "dock-007", "0B1A2B", 'a"b', "a\\b",
                                                "站", "\x00", "e"])
_REAL = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2, 2**40)


@given(kind=_TEXT, site=_TEXT, station=_TEXT, device=_TEXT, slot=st.integers(-5, 2**70),
       bike=st.none() | _TEXT, code=st.none() | _TEXT, epoch=_TEXT, seq=st.integers(0, 2**64),
       received=_REAL, happened=st.none() | _REAL, corrected=st.booleans(),
       rental=st.none() | _TEXT)
def test_an_event_is_the_encoders_json_whatever_its_values(
        kind: str, site: str, station: str, device: str, slot: int, bike: str | None,
        code: str | None, epoch: str, seq: int, received: float, happened: float | None,
        corrected: bool, rental: str | None) -> None:
    rec = EventRecord(device, epoch, seq, station, kind, slot, bike, code, received, happened,
                      corrected=corrected)
    clock = "corrected" if corrected else "dock" if happened is not None else "edge"
    want = json.dumps({
        "type": kind, "site": site, "station": station, "device": device, "slot": slot,
        "bike": bike, "code": code, "epoch": epoch, "seq": seq,
        "at": happened if happened is not None else received, "clock": clock,
        "received": received, "rental_id": rental}, ensure_ascii=False)
    assert BackendFormat(site).event(rec, rental) == want


@given(key=_TEXT, kind=_TEXT)
def test_an_outbox_item_quotes_its_key_and_kind_as_json_does(key: str, kind: str) -> None:
    row = OutboxRow(1, 0, kind, key, '{"a":1}', 0.0)
    assert json.loads(item(row)) == {"key": key, "kind": kind, "body": {"a": 1}}
    assert item(row) == f'{{"key":{json.dumps(key)},"kind":{json.dumps(kind)},"body":{{"a":1}}}}'
