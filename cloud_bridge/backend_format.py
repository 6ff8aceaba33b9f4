"""The city backend's JSON for what an edge sends it (docs/bridge.md): one
place, so the edge's core never formats for the backend. Each body travels in
an outbox row and is posted (webhook) or published (MQTT) as it is."""

from __future__ import annotations

import json
from dataclasses import asdict

from edge.core.records import EventRecord, OutboxRow
from edge.core.rentals import Outcome
from edge.core.stations import StationStatus


def item(r: OutboxRow) -> str:
    """One outbox row as the backend takes it, {"key", "kind", "body"}: the body
    is the outbox's JSON already, so it is spliced in, not decoded and encoded
    again for every row (both uplinks send items so)."""
    return f'{{"key":{json.dumps(r.key)},"kind":{json.dumps(r.kind)},"body":{r.body}}}'


def webhook_batch(site: str, sent_at: float, rows: list[OutboxRow]) -> bytes:
    """A webhook post's body: {"site", "sent_at", "items": [...]}."""
    return (f'{{"site":{json.dumps(site)},"sent_at":{sent_at!r},"items":['
            + ",".join(map(item, rows)) + "]}").encode()


# json.dumps(..., ensure_ascii=False), made once: dumps builds an encoder per call
# when given any option, a sixth of the time of each event's row.
_UTF8_JSON = json.JSONEncoder(ensure_ascii=False)


class BackendFormat:
    def __init__(self, site: str) -> None:
        self.site = site

    def event(self, rec: EventRecord, rental_id: str | None) -> str:
        """A rent/return/fault, keyed for the backend by (device, epoch, seq).
        "at" is when it happened: the dock's stamp on the edge's clock, or,
        for an event made before the dock heard the edge's time since it
        booted, when the edge received it ("clock" says which: "dock", "edge", or
        "corrected" where the dock's stamp ran ahead of the edge's clock or behind its
        own previous one and "at" is the edge's bound)."""
        clock = "corrected" if rec.corrected else "dock" if rec.happened is not None \
            else "edge"
        return _UTF8_JSON.encode({
            "type": rec.kind, "site": self.site, "station": rec.station, "device": rec.device,
            "slot": rec.slot, "bike": rec.bike, "code": rec.code, "epoch": rec.epoch,
            "seq": rec.seq, "at": rec.happened if rec.happened is not None else rec.received,
            "clock": clock, "received": rec.received, "rental_id": rental_id})

    def station(self, status: StationStatus, version: int) -> str:
        """A station's availability; the outbox keeps only the newest per station."""
        return json.dumps({**asdict(status), "site": self.site, "version": version})

    def rental(self, outcome: Outcome) -> str:
        """A rental's outcome, or a reservation's answer (edge/core/rentals.py)."""
        return json.dumps({**outcome.fields(), "site": self.site}, ensure_ascii=False)
