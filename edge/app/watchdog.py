"""The edge's side of systemd's watchdog (`Type=notify`, `WatchdogSec=`): a
ping each third of the period, sent only while every stage of the pipeline
makes progress (edge/core/liveness.py) and the event loop itself runs. A hung
stage or a blocked loop stops the pings; systemd then kills and restarts the
edge, whose journal and outbox carry on from disk."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from edge.core.liveness import Liveness

log = logging.getLogger("edge.watchdog")


async def feed(liveness: Liveness, period_s: float, notify: Callable[[str], None],
               status: Callable[[], str],
               clock: Callable[[], float] = time.monotonic) -> None:
    stalled_before = False
    while True:
        await asyncio.sleep(period_s / 3)
        stalled = liveness.stalled(clock())
        if stalled:
            if not stalled_before:
                log.error("watchdog: %s made no progress for %s with work waiting; not "
                          "pinging systemd, which restarts the edge after its WatchdogSec",
                          ", ".join(name for name, _ in stalled),
                          ", ".join(f"{secs:.0f} s" for _, secs in stalled))
            stalled_before = True
            notify(f"STATUS=stalled: {', '.join(name for name, _ in stalled)}")
            continue
        if stalled_before:
            log.warning("watchdog: the pipeline moves again; pinging systemd")
            stalled_before = False
        notify(f"WATCHDOG=1\nSTATUS={status()}")
