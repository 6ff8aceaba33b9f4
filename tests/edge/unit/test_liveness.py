"""The watchdog's view of the pipeline, with plain values: a stage with work
waiting and nothing done past the limit is stalled; idle is never stalled;
progress clears it; each stage is judged on its own."""

from __future__ import annotations

from edge.core.liveness import Liveness


def test_stalled_only_with_work_waiting_and_no_progress() -> None:
    waiting, done = [0], [0]
    live = Liveness(limit_s=10)
    live.add("store-writer", lambda: waiting[0], lambda: done[0])
    live.add("dispatch", lambda: 0, lambda: 0)  # idle throughout
    assert live.stalled(0) == []
    assert live.stalled(100) == []  # idle for long: fine
    waiting[0] = 5
    assert live.stalled(105) == []  # work since at most 5 s
    assert live.stalled(111) == [("store-writer", 11)]
    done[0] = 1  # it wrote a batch: moving, though work still waits
    assert live.stalled(112) == []
    assert live.stalled(122) == []
    assert live.stalled(123) == [("store-writer", 11)]
    waiting[0] = 0
    assert live.stalled(200) == []
