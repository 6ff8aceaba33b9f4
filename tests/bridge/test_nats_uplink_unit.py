"""The city tier's uplink with plain values: where each outbox row goes, and
the envelope it travels in (the body spliced in, not re-encoded)."""

from __future__ import annotations

import json

from cloud_bridge.nats_uplink import NatsUplink, envelope, token
from edge.config import UplinkConfig
from edge.core.metrics import Metrics
from edge.core.records import OutboxRow


def _up(site: str = "anji") -> NatsUplink:
    cfg = UplinkConfig(name="city-tier", kind="nats", url="tls://a:4222", secret="s" * 20,
                       username="site-anji", password="pw")
    return NatsUplink(cfg, site, Metrics(), lambda: None)


def test_each_row_goes_to_its_sites_subject() -> None:
    up = _up()
    row = OutboxRow(1, 1, "event", "ev:dock-001:e:1", "{}", 0.0)
    assert up.subject(row) == "city.anji.events"
    assert up.subject(OutboxRow(2, 1, "rental", "rental:r1", "{}", 0.0)) == "city.anji.results"
    assert up.subject(OutboxRow(3, 1, "status", "status:anji-001", "{}", 0.0)) == \
        "city.anji.status.anji-001"
    # A station id with a dot or a wildcard cannot split or widen the subject.
    assert up.subject(OutboxRow(4, 1, "status", "status:a.b*>", "{}", 0.0)) == \
        "city.anji.status.a_b__"
    assert token("") == "_"


def test_the_envelope_carries_the_body_as_it_is() -> None:
    body = json.dumps({"station": "站", "seq": 7}, ensure_ascii=False)
    row = OutboxRow(1, 1, "event", 'ev:"odd"\\key', body, 0.0)
    doc = json.loads(envelope(row))
    assert doc == {"key": 'ev:"odd"\\key', "kind": "event", "body": {"station": "站", "seq": 7}}


def test_a_webhook_batch_is_the_items_spliced_into_one_document() -> None:
    from cloud_bridge.backend_format import webhook_batch

    rows = [OutboxRow(1, 1, "event", "ev:dock-001:e:1", json.dumps({"station": "站", "seq": 1},
                                                                  ensure_ascii=False), 0.0),
            OutboxRow(2, 3, "status", 'status:"s1"', '{"bikes":2}', 0.0)]
    doc = json.loads(webhook_batch("安吉", 1764912345.25, rows))
    assert doc == {"site": "安吉", "sent_at": 1764912345.25, "items": [
        {"key": "ev:dock-001:e:1", "kind": "event", "body": {"station": "站", "seq": 1}},
        {"key": 'status:"s1"', "kind": "status", "body": {"bikes": 2}}]}
    assert json.loads(webhook_batch("anji", 1.0, []))["items"] == []
