"""Progress bars for long technician work (flash, OTA): redrawn in place on a
terminal, one line per step otherwise (logs and CI keep a readable record)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Bar:
    def __init__(self, label: str, total: int, out: TextIO | None = None,
                 width: int = 28) -> None:
        self.label = label
        self.total = max(total, 1)
        self.out = out or sys.stderr
        self.width = width
        self.done = 0
        self._tty = self.out.isatty()
        self._last = -1.0
        self._t0 = time.monotonic()

    def update(self, done: int) -> None:
        self.done = min(done, self.total)
        now = time.monotonic()
        if self._tty and now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        if self._tty:
            self.out.write("\r" + self.line())
            self.out.flush()

    def line(self) -> str:
        frac = self.done / self.total
        fill = int(frac * self.width)
        return (f"{self.label:<34} [{'#' * fill}{'.' * (self.width - fill)}] "
                f"{frac * 100:5.1f}%  {self.done}/{self.total}")

    def finish(self, note: str = "") -> None:
        secs = time.monotonic() - self._t0
        text = self.line() + f"  {secs:.1f}s" + (f"  {note}" if note else "")
        self.out.write(("\r" if self._tty else "") + text + "\n")
        self.out.flush()
