"""The per-device budget (edge/core/budget.py) with plain values: a device
within its rate is never cut off, one beyond it gets its rate and no more
whatever it sends, one device's flood costs another nothing, and the table
stays bounded under any number of device ids."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.core.budget import DeviceBudget


@settings(max_examples=100, deadline=None)
@given(rate=st.floats(1, 100), burst=st.integers(1, 500), seconds=st.integers(1, 60),
       per_s=st.integers(1, 2000))
def test_a_flood_gets_its_rate_and_burst_and_no_more_and_costs_others_nothing(
        rate: float, burst: int, seconds: int, per_s: int) -> None:
    b = DeviceBudget(rate, burst)
    taken = quiet = 0
    for i in range(seconds * per_s):
        now = i / per_s
        taken += b.take("flood", now)
        if i % per_s == 0:  # a well-behaved dock: one message a second
            quiet += b.take("quiet", now)
    assert taken <= burst + rate * seconds + 1
    assert taken >= min(seconds * per_s, burst)  # its burst is always there
    assert quiet == seconds  # never cut off by the other's flood


def test_the_table_is_bounded_and_forgets_the_idlest_first() -> None:
    b = DeviceBudget(rate=1, burst=2, max_devices=100)
    for i in range(1000):
        b.take(f"stranger-{i}", float(i))
        assert len(b) <= 100
    assert b.take("stranger-999", 999.0)  # the newest kept its bucket (1 left)
    assert not b.take("stranger-999", 999.0)
