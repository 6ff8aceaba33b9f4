"""The city backend's JSON for what an edge sends it (docs/bridge.md): one
place, so the edge's core never formats for the backend. Each body travels in
an outbox row and is posted (webhook) or published (MQTT) as it is."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

from edge.core.records import EventRecord, OutboxRow
from edge.core.rentals import Outcome
from edge.core.stations import StationStatus


def item(r: OutboxRow) -> str:
    """One outbox row as the backend takes it, {"key", "kind", "body"}: the body
    is the outbox's JSON already, so it is spliced in, not decoded and encoded
    again for every row (both uplinks send items so)."""
    try:
        return f'{{"key":{_text(r.key)},"kind":{_text(r.kind)},"body":{r.body}}}'
    except _Unusual:  # quoted as json.dumps quotes (ASCII only, escapes)
        return f'{{"key":{json.dumps(r.key)},"kind":{json.dumps(r.kind)},"body":{r.body}}}'


def webhook_batch(site: str, sent_at: float, rows: list[OutboxRow]) -> bytes:
    """A webhook post's body: {"site", "sent_at", "items": [...]}."""
    return (f'{{"site":{json.dumps(site)},"sent_at":{sent_at!r},"items":['
            + ",".join(map(item, rows)) + "]}").encode()


# json.dumps(..., ensure_ascii=False), made once: dumps builds an encoder per call
# when given any option, a sixth of the time of each event's row.
_UTF8_JSON = json.JSONEncoder(ensure_ascii=False)


class _Unusual(Exception):
    """A value the fast path does not write as the encoder would."""


def _text(value: object) -> str:
    """A str (or None) as the encoder writes it, where that is only quoting it."""
    if value is None:
        return "null"
    if type(value) is str and value.isascii() and value.isprintable() \
            and '"' not in value and "\\" not in value:
        return f'"{value}"'
    raise _Unusual


def _whole(value: object) -> str:
    if type(value) is int:
        return repr(value)
    raise _Unusual


def _real(value: object) -> str:
    if type(value) is float and math.isfinite(value):
        return repr(value)  # json writes a float with float.__repr__
    if type(value) is int:
        return repr(value)
    raise _Unusual


class BackendFormat:
    def __init__(self, site: str) -> None:
        self.site = site
        self._site = _UTF8_JSON.encode(site)

    def event(self, rec: EventRecord, rental_id: str | None) -> str:
        """A rent/return/fault, keyed for the backend by (device, epoch, seq).
        "at" is when it happened: the dock's stamp on the edge's clock, or,
        for an event made before the dock heard the edge's time since it
        booted, when the edge received it ("clock" says which: "dock", "edge", or
        "corrected" where the dock's stamp ran ahead of the edge's clock or behind its
        own previous one and "at" is the edge's bound)."""
        clock = "corrected" if rec.corrected else "dock" if rec.happened is not None \
            else "edge"
        at = rec.happened if rec.happened is not None else rec.received
        try:
            # What the encoder writes, without walking a dict for each event (a tenth
            # of a backlog's loop); any value it would write otherwise goes to it.
            return (f'{{"type": {_text(rec.kind)}, "site": {self._site}, "station": '
                    f'{_text(rec.station)}, "device": {_text(rec.device)}, "slot": '
                    f'{_whole(rec.slot)}, "bike": {_text(rec.bike)}, "code": {_text(rec.code)}, '
                    f'"epoch": {_text(rec.epoch)}, "seq": {_whole(rec.seq)}, "at": {_real(at)}, '
                    f'"clock": "{clock}", "received": {_real(rec.received)}, "rental_id": '
                    f'{_text(rental_id)}}}')
        except _Unusual:
            return _UTF8_JSON.encode({
                "type": rec.kind, "site": self.site, "station": rec.station,
                "device": rec.device, "slot": rec.slot, "bike": rec.bike, "code": rec.code,
                "epoch": rec.epoch, "seq": rec.seq, "at": at, "clock": clock,
                "received": rec.received, "rental_id": rental_id})

    def station(self, status: StationStatus, version: int) -> str:
        """A station's availability; the outbox keeps only the newest per station."""
        return json.dumps({**asdict(status), "site": self.site, "version": version})

    def rental(self, outcome: Outcome) -> str:
        """A rental's outcome, or a reservation's answer (edge/core/rentals.py)."""
        return json.dumps({**outcome.fields(), "site": self.site}, ensure_ascii=False)
