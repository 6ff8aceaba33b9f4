"""A flood of bad input does not flood the log (edge/core/ratelog.py): a few lines
per reason a minute, then one line saying the rest are counted, then, when the
minute is over, how many were held back."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.core import ratelog


def test_a_flood_gets_a_few_lines_per_reason(caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(ratelog.time, "monotonic", lambda: now[0])
    log = ratelog.RateLimitedLog(logging.getLogger("t"), burst=3, window_s=60)
    with caplog.at_level(logging.WARNING):
        for i in range(500):
            log.warning("bad_mac", "dropped %d", i)
        log.warning("json", "a different reason")
        now[0] += 61
        log.warning("bad_mac", "dropped again")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["dropped 0", "dropped 1", "dropped 2",
                     "more 'bad_mac' warnings are counted, not shown, until 60 s have passed",
                     "a different reason",
                     "497 more 'bad_mac' warnings in the last 61 s not shown", "dropped again"]


def test_routine_lines_one_by_one_at_a_towns_pace_counted_in_a_burst(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(ratelog.time, "monotonic", lambda: now[0])
    log = ratelog.RateLimitedLog(logging.getLogger("t"), burst=2, window_s=10)
    with caplog.at_level(logging.INFO):
        for i in range(2):  # a town's pace: every line shown
            log.info("event", "event %d", i)
            now[0] += 11
        for i in range(2, 300):  # a backlog drained at once
            log.info("event", "event %d", i)
        now[0] += 11
        log.info("event", "event after")
    lines = [r.getMessage() for r in caplog.records]
    assert all(r.levelno == logging.INFO for r in caplog.records)
    assert lines == ["event 0", "event 1", "event 2", "event 3",
                     "more 'event' lines are counted, not shown, until 10 s have passed",
                     "296 more 'event' lines in the last 11 s not shown", "event after"]


def test_someone_elses_text_is_one_readable_line(caplog: pytest.LogCaptureFixture) -> None:
    """An Origin header a fuzzer sent held a lone surrogate (bytes that are not
    UTF-8): the line could not be written to a UTF-8 journal. A newline in it
    would have forged a second line."""
    log = ratelog.RateLimitedLog(logging.getLogger("t"))
    with caplog.at_level(logging.WARNING):
        log.warning("cross_site", "Origin %s refused (%d)", "x\udcc3\nFAKE: ok", 3)
        log.warning("name", "station %s", "昌硕广场")
        log.warning("long", "%s", "a" * 5000)
    got = [r.getMessage() for r in caplog.records]
    assert got[0] == "Origin x\\udcc3\\nFAKE: ok refused (3)"
    assert got[1] == "station 昌硕广场"
    assert len(got[2]) == ratelog.SHOWN_MAX + 3
    for line in got:
        line.encode("utf-8")  # writable as it is


@given(st.lists(st.tuples(st.floats(0, 30), st.integers(0, 8)), max_size=12))
def test_a_batchs_lines_at_once_are_what_they_would_be_one_by_one(
        steps: list[tuple[float, int]]) -> None:
    """info_each (a committed batch's events) logs and counts exactly as info()
    called for each would: the same lines, the same held-back counts after."""
    def lines(each: bool) -> list[str]:
        now = [1000.0]
        got: list[str] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                got.append(record.getMessage())
        logger = logging.getLogger(f"t.each.{each}")
        logger.handlers[:] = [Keep()]
        logger.setLevel(logging.INFO)
        logger.propagate = False
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ratelog.time, "monotonic", lambda: now[0])
            log = ratelog.RateLimitedLog(logger, burst=3, window_s=10)
            k = 0
            for advance, n in steps:
                now[0] += advance
                batch = [(k + i,) for i in range(n)]
                k += n
                if each:
                    log.info_each("event", "event %d", batch)
                else:
                    for args in batch:
                        log.info("event", "event %d", *args)
            now[0] += 11
            log.info("event", "the last")
        return got
    assert lines(each=True) == lines(each=False)
