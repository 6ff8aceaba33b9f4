"""Counters by name and reason: every drop and rejection is counted here, and
served at /api/metrics (JSON, "name.reason") and /metrics (Prometheus, the
reason as a label) for technicians, scrapers and tests."""

from __future__ import annotations

from collections import Counter


class Metrics:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()  # (name, reason) -> n

    def inc(self, name: str, reason: str = "", n: int = 1) -> None:
        self.counts[(name, reason)] += n

    def get(self, name: str, reason: str = "") -> int:
        return self.counts[(name, reason)]

    def snapshot(self) -> dict[str, int]:
        return dict(sorted((f"{name}.{reason}" if reason else name, n)
                           for (name, reason), n in self.counts.items()))

    def by_name(self) -> dict[str, dict[str, int]]:
        """{name: {reason: n}}, the reason "" where a counter has none."""
        out: dict[str, dict[str, int]] = {}
        for (name, reason), n in sorted(self.counts.items()):
            out.setdefault(name, {})[reason] = n
        return out
