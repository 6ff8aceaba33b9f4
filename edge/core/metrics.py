"""Counters by name and reason: every drop and rejection is counted here, and
served at /api/metrics (JSON, "name.reason") and /metrics (Prometheus, the
reason as a label) for technicians, scrapers and tests. Latencies are
histograms (`observe`): event to store, event to backend."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter


class Metrics:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()  # (name, reason) -> n
        # (name, label) -> histogram: a few fixed names, the label an uplink's name
        self.histograms: dict[tuple[str, str], Histogram] = {}

    def observe(self, name: str, seconds: float, label: str = "") -> None:
        h = self.histograms.get((name, label))
        if h is None:
            h = self.histograms[(name, label)] = Histogram()
        h.observe(seconds)

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


# Seconds: a town's event reaches its store in milliseconds, and the backend in
# well under a second; the tail buckets catch an outage's backlog.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0, 300.0, 3600.0)


class Histogram:
    """Observations counted into fixed buckets (cumulative when read), with
    their sum: bounded whatever the traffic, as Prometheus expects."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        value = max(value, 0.0)  # a clock stepped back is not a negative latency
        self.sum += value
        # The first bucket whose bound is at or above it (+Inf past the last): a
        # backlog's seconds-old events would walk every bound otherwise.
        self.counts[bisect_left(self.bounds, value)] += 1

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """[(upper bound, observations at or below it)], +Inf last."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out
