"""The one backoff (edge/core/backoff.py) every retrying loop uses, with a fixed
random source: it doubles to its cap, its jitter stays within its share, and a
success starts it over."""

from __future__ import annotations

from edge.core.backoff import Backoff


def test_doubles_to_the_cap_and_starts_over_after_a_success() -> None:
    b = Backoff(first=0.5, cap=30.0, jitter=0.0)
    assert [b.next() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    b.reset()
    assert b.next() == 0.5


def test_jitter_stretches_each_delay_by_at_most_its_share() -> None:
    for r in (0.0, 0.25, 0.999):
        b = Backoff(first=1.0, cap=8.0, jitter=0.5, rng=lambda r=r: r)
        delays = [b.next() for _ in range(6)]
        bases = [1, 2, 4, 8, 8, 8]
        assert all(base <= d <= base * 1.5 for d, base in zip(delays, bases, strict=True))
        assert delays[0] == 1.0 + r * 0.5
