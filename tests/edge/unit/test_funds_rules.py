"""A kiosk's fund lookup rules (edge/core/funds.py) with plain values: only a
registered kiosk with a token of the kiosks' form, at a villager's pace; the
cache answers alone while fresh; an answer keeps the newest records."""

from __future__ import annotations

from edge.core import funds as rules

TOKEN = "0123456789abcdef" * 2


def test_only_a_kiosk_with_a_kiosk_token_may_ask() -> None:
    assert rules.admit("dock", TOKEN, None, 0.0, 30)[0] == "not_a_kiosk"
    assert rules.admit(None, TOKEN, None, 0.0, 30)[0] == "not_a_kiosk"  # not registered
    for bad in ("", TOKEN.upper(), TOKEN[:-1], TOKEN + "0", "310101199001011234"):
        assert rules.admit("kiosk", bad, None, 0.0, 30)[0] == "bad_token"


def test_a_burst_then_a_villagers_pace() -> None:
    bucket = None
    seen = []
    for _ in range(rules.BURST + 1):  # all at once
        why, bucket = rules.admit("kiosk", TOKEN, bucket, 0.0, 30)
        seen.append(why)
    assert seen == [None] * rules.BURST + ["busy"]
    # 30 a minute: one more every 2 s, never more than the burst saved up.
    assert rules.admit("kiosk", TOKEN, bucket, 1.9, 30)[0] == "busy"
    why, bucket = rules.admit("kiosk", TOKEN, bucket, 2.1, 30)
    assert why is None
    assert bucket is not None
    _, later = rules.admit("kiosk", TOKEN, bucket, 10_000.0, 30)
    assert later is not None and later.tokens == rules.BURST - 1


def test_the_cache_answers_alone_while_fresh_and_keeps_the_newest() -> None:
    assert rules.fresh(100.0, 100.0 + rules.FRESH_S - 1)
    assert not rules.fresh(100.0, 100.0 + rules.FRESH_S)
    recs = [{"paid": f"2026-0{m}-01", "amount_fen": m} for m in range(1, 10)]
    kept = rules.newest(recs)
    assert len(kept) == rules.MAX_RECORDS
    assert [r["paid"] for r in kept] == [f"2026-0{m}-01" for m in range(9, 3, -1)]
    assert rules.answer(kept, 12.7, stale=True) == {"ok": True, "records": kept, "as_of": 12,
                                                    "stale": True}
