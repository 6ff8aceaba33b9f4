"""The edge's latency histogram: fixed buckets, cumulative when read, its sum
and count, a negative latency (a clock stepped back) counted as zero."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge.core.metrics import LATENCY_BUCKETS, Histogram, Metrics


def test_histogram_buckets_are_cumulative_and_bounded() -> None:
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 3.0, -2.0):
        h.observe(v)
    assert h.cumulative() == [(0.1, 3), (1.0, 4), (float("inf"), 5)]
    assert h.count == 5
    assert abs(h.sum - 3.65) < 1e-9
    for _ in range(10_000):
        h.observe(0.2)
    assert len(h.counts) == 3  # bounded whatever the traffic


def test_metrics_keep_one_histogram_per_name_and_label() -> None:
    m = Metrics()
    m.observe("event_to_backend", 0.2, "city")
    m.observe("event_to_backend", 0.3, "city")
    m.observe("event_to_backend", 9.0, "tier")
    assert m.histograms[("event_to_backend", "city")].count == 2
    assert m.histograms[("event_to_backend", "tier")].count == 1


@given(st.lists(st.floats(-10, 5000, allow_nan=False) | st.sampled_from(LATENCY_BUCKETS),
                max_size=50))
def test_each_value_counts_in_every_bucket_at_or_above_it(values: list[float]) -> None:
    # Prometheus's "le": a value equal to a bound is in that bound's bucket.
    h = Histogram()
    for v in values:
        h.observe(v)
    for bound, n in h.cumulative():
        assert n == sum(1 for v in values if max(v, 0.0) <= bound)
