"""The watchdog's feeder (edge/app/watchdog.py) with plain values: a real
Liveness over counters the test moves, a clock the test sets, and the notify
messages it would send systemd, in order. No systemd, no edge process (the
end-to-end check is tests/edge/test_systemd_notify.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge.app import watchdog
from edge.core.liveness import Liveness
from tests.conftest import run


def test_pings_stop_while_a_stage_with_work_is_stuck_and_come_back(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    waiting, done = [0], [0]
    live = Liveness(limit_s=30.0)
    live.add("store", lambda: waiting[0], lambda: done[0])
    told: list[str] = []
    ticks = asyncio.Event()

    def notify(msg: str) -> None:
        told.append(msg)
        ticks.set()

    async def step(seconds: float) -> str:
        """Moves the clock, then waits for the feeder's next message."""
        now[0] += seconds
        ticks.clear()
        await ticks.wait()
        return told[-1]

    async def main() -> None:
        async with asyncio.timeout(20):  # a feeder that stopped telling fails, not hangs
            await walk()

    async def walk() -> None:
        task = asyncio.create_task(watchdog.feed(live, 0.03, notify, lambda: "42 devices",
                                                  lambda: now[0]))
        assert await step(0) == "WATCHDOG=1\nSTATUS=42 devices"
        waiting[0] = 5  # work arrives and the stage does nothing with it
        assert (await step(10)).startswith("WATCHDOG=1")  # not yet past the limit
        assert await step(31) == "STATUS=stalled: store"
        assert await step(60) == "STATUS=stalled: store"  # still, and logged once
        done[0] = 1  # it moves again
        assert await step(1) == "WATCHDOG=1\nSTATUS=42 devices"
        waiting[0] = 0
        assert (await step(600)).startswith("WATCHDOG=1")  # idle is never stalled
        task.cancel()
    with caplog.at_level(logging.WARNING, "edge.watchdog"):
        run(main())
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("watchdog: store made no progress for 41 s")
    assert lines[1] == "watchdog: the pipeline moves again; pinging systemd"
