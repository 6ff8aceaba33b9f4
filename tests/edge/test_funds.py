"""Kiosk lookups at the edge (edge/app/funds.py), with plain values: answered only
for devices registered as kiosks, only for tokens of the kiosks' form, at a
villager's pace; cached answers forgotten after the retention, beyond the cap
and when the region key changes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from edge.app.funds import MAX_CACHED
from edge.config import parse
from edge.core import funds as rules
from edge.runtime import Edge
from tests.conftest import run

TOKEN = "4c8ff931add5422568bfa5b8f1db6182"


def _svc(tmp: Path, **edge: object) -> Edge:
    return Edge(parse({
        "edge": {"site": "t", "http_port": 0, "db": str(tmp / "edge.db"), **edge},
        "stations": [{"id": "s1", "name_zh": "一号站", "lat": 30.6, "lon": 119.6,
                      "devices": ["dock-a"]}],
        "kiosks": [{"id": "kiosk-a"}]}))


def test_lookups_only_from_kiosks_with_a_token_at_a_villagers_pace(tmp_path: Path) -> None:
    f = _svc(tmp_path).funds
    # A dock's own hello says "kiosk": its registered role stays a dock.
    f.registry.devices["dock-a"].kind = "kiosk"
    assert f.admit("dock-a", TOKEN, 0.0) == "not_a_kiosk"
    assert f.admit("stranger", TOKEN, 0.0) == "not_a_kiosk"
    for bad in ("", "11010519491231002X", TOKEN.upper(), TOKEN + "0", "g" * 32):
        assert f.admit("kiosk-a", bad, 0.0) == "bad_token", bad
    # A burst of BURST, then one every 2 s (30 a minute, the default).
    assert [f.admit("kiosk-a", TOKEN, 0.0) for _ in range(rules.BURST)] == [None] * rules.BURST
    assert f.admit("kiosk-a", TOKEN, 1.0) == "busy"
    assert f.admit("kiosk-a", TOKEN, 2.1) is None
    assert f.admit("kiosk-a", TOKEN, 2.2) == "busy"
    # A walk through ID numbers at 10 a second for a minute: 30 more get through.
    t, through = 100.0, 0
    for _ in range(600):
        t += 0.1
        through += f.admit("kiosk-a", TOKEN, t) is None
    assert through <= rules.BURST + 30 + 1, through


def test_cached_answers_expire_and_go_with_a_new_region_key(tmp_path: Path) -> None:
    async def main() -> None:
        svc = _svc(tmp_path, funds_retention_days=1, region_key_id="2026-a")
        j = svc.store
        await j.open()
        try:
            await svc.funds.start()
            for i in range(3):
                tok = f"{i:032x}"
                await j.funds_put(tok, "[]", time.time())
                await j.funds_touch(tok)
            assert await svc.funds.purge() == 0  # all looked up just now
            # The least recently looked-up beyond the cap go first.
            n = await j.funds_purge(0.0, 2)
            assert n >= 1 and await j.funds_get(f"{0:032x}") is None
            assert await j.funds_get(f"{2:032x}") is not None
            # Past the retention, everyone goes.
            await j.funds_purge(time.time() + 1, MAX_CACHED)
            assert await j.funds_get(f"{2:032x}") is None
            # A new region key: whatever was cached under the old one goes at start.
            await j.funds_put(TOKEN, "[]", time.time())
            await j.funds_touch(TOKEN)
            await svc.funds.start()  # same key id: kept
            assert await j.funds_get(TOKEN) is not None
        finally:
            await j.close()
        svc2 = _svc(tmp_path, funds_retention_days=1, region_key_id="2026-b")
        await svc2.store.open()
        try:
            await svc2.funds.start()
            assert await svc2.store.funds_get(TOKEN) is None
        finally:
            await svc2.store.close()
    run(main())


def test_retention_keeps_undelivered_events_and_caps_dead_letters(tmp_path: Path) -> None:
    """edge/adapters/store.py retention(): old events go only once no uplink still
    has them to deliver; finished rentals go, claimed ones stay; dead letters
    keep the newest N."""
    from edge.core.records import EventRecord, OutboxRow
    from edge.core.rentals import DONE, Outcome, Rental

    async def main() -> None:
        svc = Edge(parse({
            "edge": {"site": "t", "http_port": 0, "db": str(tmp_path / "edge.db")},
            "stations": [{"id": "s1", "name_zh": "一号站", "lat": 30.6, "lon": 119.6,
                          "devices": ["dock-a"]}],
            "uplinks": [{"name": "city", "kind": "webhook", "url": "https://city.example/x",
                         "secret": "0123456789abcdef0"}]}))
        j = svc.store
        await j.open()
        writer = asyncio.create_task(j.run())
        try:
            for seq in range(4):
                await j.submit(EventRecord("dock-a", "e", seq, "s1", "returned", 0, "0B01", None,
                                           1000.0, outbox='{"x":1}'))
            batch = await j.outbox_batch("city", 10)
            delivered = [r for r in batch if r.key in ("ev:dock-a:e:0", "ev:dock-a:e:1")]
            await j.outbox_done("city", [(r.id, r.version) for r in delivered])
            await j.rental_claim("r-done", "s1", time.time())
            await j.rental_save(Rental("r-done", "s1", DONE, result=Outcome("r-done", "s1", False, 0.0)))
            await j.rental_claim("r-open", "s1", time.time())
            rows = [OutboxRow(1000 + i, 0, "status", f"k{i}", "{}", 0.0) for i in range(30)]
            for i in range(0, 30, 10):
                await j.outbox_dead_letter("city", rows[i:i + 10], "refused")
            ev, rn, dl = await j.retention(2000.0, time.time() + 1, 10)
            assert (ev, rn, dl) == (2, 1, 20)
            left = sorted(e["seq"] for e in await j.events())
            assert left == [2, 3]  # still on their way to the backend
        finally:
            writer.cancel()
            await j.close()
    run(main())
