"""A flood of bad input does not flood the log (edge/core/ratelog.py): a few lines
per reason a minute, then one line saying the rest are counted, then, when the
minute is over, how many were held back."""

from __future__ import annotations

import logging

import pytest

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
                     "more 'bad_mac' warnings this minute are counted, not shown",
                     "a different reason",
                     "497 more 'bad_mac' warnings in the last 61 s not shown", "dropped again"]
