"""The kiosk's swipe flow (firmware/apps/kiosk/flow.py) with plain values: the
decisions of a swipe without a card module, a screen or an edge (the
end-to-end swipe runs in tests/kiosk/test_swipe.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "firmware"))
from apps.kiosk import flow  # noqa: E402


def _diff(a: int, b: int) -> int:
    return a - b


def test_a_good_card_is_read_looked_up_shown_and_lifted() -> None:
    f = flow.Flow(show_ms=30_000)
    assert f.poll(False, 0, _diff) is None and f.state == flow.IDLE
    assert f.poll(True, 10, _diff) == flow.READ and f.state == flow.READING
    assert f.poll(True, 20, _diff) is None  # reading: the reader is not polled again
    f.read(flow.card_problem(True, None, False))
    assert f.state == flow.ASKING and f.on_result()
    f.shown(1_000)
    assert f.poll(True, 2_000, _diff) is None and f.on_result()
    assert f.poll(False, 3_000, _diff) == flow.IDLE_SCREEN and f.state == flow.IDLE
    assert not f.on_result()


def test_a_card_left_on_the_reader_fades_once_and_is_not_read_again() -> None:
    f = flow.Flow(show_ms=30_000)
    f.poll(True, 0, _diff)
    f.read("unreadable")
    assert f.state == flow.SHOWING
    f.shown(100)
    assert f.poll(True, 30_099, _diff) is None
    assert f.poll(True, 30_100, _diff) == flow.IDLE_SCREEN and not f.on_result()
    assert f.poll(True, 90_000, _diff) is None  # still there: no second read
    assert f.poll(False, 90_100, _diff) == flow.IDLE_SCREEN
    assert f.poll(True, 90_200, _diff) == flow.READ  # placed again: a new swipe


def test_the_page_counts_down_whole_seconds_until_it_fades() -> None:
    f = flow.Flow(show_ms=30_000)
    assert f.left_s(0, _diff) is None  # nothing shown
    f.poll(True, 0, _diff)
    f.read(None)
    assert f.left_s(50, _diff) is None  # still asking the edge
    f.shown(1_000)
    seen = [f.left_s(t, _diff) for t in range(1_000, 31_001, 250)]
    assert seen[0] == 30 and seen[-1] == 0
    assert seen == sorted(seen, reverse=True)  # never goes up
    assert sorted(set(seen)) == list(range(31))  # every second is shown, none skipped
    assert f.left_s(1_001, _diff) == 30 and f.left_s(2_000, _diff) == 29  # rounded up
    assert f.poll(True, 31_000, _diff) == flow.IDLE_SCREEN
    assert f.left_s(31_100, _diff) is None  # faded: no countdown over the idle page


def test_a_look_the_module_did_not_answer_changes_nothing() -> None:
    # A loaded line once timed out one look while a villager's card lay on the
    # reader: taken for "lifted", the card was read again and the result gone.
    f = flow.Flow(show_ms=30_000)
    assert f.poll(None, 0, _diff) is None and f.state == flow.IDLE  # no read on no answer
    f.poll(True, 10, _diff)
    f.read(None)
    f.shown(100)
    assert f.poll(None, 200, _diff) is None and f.state == flow.SHOWING and f.on_result()
    assert f.poll(True, 300, _diff) is None and f.on_result()  # the card was there all along
    assert f.poll(None, 30_100, _diff) == flow.IDLE_SCREEN  # it still fades in time
    assert f.poll(False, 30_200, _diff) == flow.IDLE_SCREEN and f.state == flow.IDLE


def test_why_a_card_or_an_answer_shows_no_records() -> None:
    assert flow.card_problem(False, None, False) == "card_type"
    assert flow.card_problem(True, "check", False) == "invalid"
    assert flow.card_problem(True, None, True) == "expired"
    assert flow.card_problem(True, None, False) is None
    assert flow.answer_problem(None) == "unavailable"
    assert flow.answer_problem({"ok": False, "err": "unknown"}) == "unknown"
    assert flow.answer_problem({"ok": False, "err": "busy"}) == "unavailable"
    assert flow.answer_problem({"ok": True, "records": []}) is None
