"""What the city backend has handled of a stream (hardware/sim/city_backend.py
Handled), with plain values: whatever order the sequences come in, the floor
is the longest unbroken run from the start, and what is missing is exactly
what was not handled, oldest first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hardware.sim.city_backend import Handled


@given(floor=st.integers(0, 20), seqs=st.lists(st.integers(1, 60), max_size=80),
       last=st.integers(0, 70), limit=st.integers(1, 80))
def test_the_floor_and_what_is_missing(floor: int, seqs: list[int], last: int,
                                       limit: int) -> None:
    h = Handled(floor)
    for s in seqs:
        h.add(s)
    done = set(range(1, floor + 1)) | set(seqs)
    want_floor = 0
    while want_floor + 1 in done:
        want_floor += 1
    assert h.floor == want_floor
    assert all(s > h.floor for s in h.above)  # nothing kept twice
    assert h.missing(last, limit) == [s for s in range(1, last + 1) if s not in done][:limit]
