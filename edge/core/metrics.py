"""Counters by name and reason: every drop and rejection is counted here, and
served at /api/metrics for technicians and tests."""

from __future__ import annotations

from collections import Counter


class Metrics:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def inc(self, name: str, reason: str = "", n: int = 1) -> None:
        self.counts[f"{name}.{reason}" if reason else name] += n

    def get(self, name: str, reason: str = "") -> int:
        return self.counts[f"{name}.{reason}" if reason else name]

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))
