"""Exponential backoff with jitter, for every loop that retries a link or a
send: the delay starts at `first`, doubles with each failure up to `cap`, and
is stretched by a random share of itself (`jitter`) so that many docks or
uplinks cut by one outage do not all come back in the same instant. A success
resets it. Pure: the caller sleeps."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, first: float = 0.5, cap: float = 30.0, jitter: float = 0.5,
                 rng: Callable[[], float] = random.random) -> None:
        self.first, self.cap, self.jitter, self._rng = first, cap, jitter, rng
        self._base = first

    def next(self) -> float:
        """The delay to wait after this failure; the next one is twice as long."""
        delay = self._base * (1 + self._rng() * self.jitter)
        self._base = min(self._base * 2, self.cap)
        return delay

    def reset(self) -> None:
        """It worked: the next failure waits `first` again."""
        self._base = self.first
