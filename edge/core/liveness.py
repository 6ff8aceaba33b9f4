"""Whether the edge's pipeline is moving: each stage reports how much work
waits for it and how much it has done. A stage with work waiting that has
done nothing for longer than the limit is stalled (a hung disk, a deadlock,
a task stuck on a lock); an idle stage never is. The watchdog
(edge/app/watchdog.py) stops telling systemd the edge is alive while any
stage is stalled, so systemd restarts it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Stage:
    name: str
    waiting: Callable[[], int]
    done: Callable[[], int]
    last_done: int = -1
    since: float = 0.0


class Liveness:
    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self._stages: list[_Stage] = []

    def add(self, name: str, waiting: Callable[[], int], done: Callable[[], int]) -> None:
        self._stages.append(_Stage(name, waiting, done))

    def stalled(self, now: float) -> list[tuple[str, float]]:
        """[(stage, seconds without progress)] for each stalled stage."""
        out = []
        for st in self._stages:
            done = st.done()
            if done != st.last_done or st.waiting() == 0:
                st.last_done, st.since = done, now
            elif now - st.since > self.limit_s:
                out.append((st.name, now - st.since))
        return out
