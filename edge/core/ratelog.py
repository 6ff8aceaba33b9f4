"""Warnings about bad input, at most a few per reason a minute: a flood of
garbage (or an attacker's) must not flood the log a technician reads, nor
the SD card. The metrics keep the true count; the log says how many it held
back when the window ends."""

from __future__ import annotations

import logging
import time
from typing import Any


class RateLimitedLog:
    def __init__(self, log: logging.Logger, burst: int = 10, window_s: float = 60.0) -> None:
        self.log = log
        self.burst = burst
        self.window_s = window_s
        self._seen: dict[str, tuple[float, int]] = {}  # reason -> (window start, count)

    def warning(self, reason: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        start, n = self._seen.get(reason, (now, 0))
        if now - start >= self.window_s:
            if n > self.burst:
                self.log.warning("%d more %r warnings in the last %.0f s not shown",
                                 n - self.burst, reason, now - start)
            start, n = now, 0
        n += 1
        self._seen[reason] = (start, n)
        if n <= self.burst:
            self.log.warning(msg, *args)
        elif n == self.burst + 1:
            self.log.warning("more %r warnings this minute are counted, not shown", reason)
