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
        self._emit(logging.WARNING, "warnings", reason, msg, *args)

    def info(self, reason: str, msg: str, *args: Any) -> None:
        """Routine lines (each event stored): one by one at a town's pace,
        counted in a burst (a day's backlog after an outage is not 100,000
        lines, and formatting them was a tenth of the edge's time)."""
        self._emit(logging.INFO, "lines", reason, msg, *args)

    def info_each(self, reason: str, msg: str, each: list[tuple[Any, ...]]) -> None:
        """info() for each arguments in `each`, in order: a committed batch's
        events; past the burst they are only counted, in one step."""
        for i, args in enumerate(each):
            start, n = self._seen.get(reason, (0.0, 0))
            if n > self.burst and time.monotonic() - start < self.window_s:
                self._seen[reason] = (start, n + len(each) - i)  # held back, all of them
                return
            self._emit(logging.INFO, "lines", reason, msg, *args)

    def _emit(self, level: int, what: str, reason: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        start, n = self._seen.get(reason, (now, 0))
        if now - start >= self.window_s:
            if n > self.burst:
                self.log.log(level, "%d more %r %s in the last %.0f s not shown",
                             n - self.burst, reason, what, now - start)
            start, n = now, 0
        n += 1
        self._seen[reason] = (start, n)
        if n <= self.burst:
            self.log.log(level, msg, *(plain(a) for a in args))
        elif n == self.burst + 1:
            self.log.log(level, "more %r %s are counted, not shown, until %.0f s have passed",
                         reason, what, self.window_s)


SHOWN_MAX = 200  # characters of one piece of someone else's text in a log line


def plain(arg: Any) -> Any:
    """Text from outside (a header, a path, a device's field) as one readable
    line: a newline cannot forge a second log line, and a byte that is not
    UTF-8 (a lone surrogate) cannot break the journal's writer. Chinese and
    other printable text stays as it is."""
    if not isinstance(arg, str):
        return arg
    text = arg if len(arg) <= SHOWN_MAX else arg[:SHOWN_MAX] + "..."
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
