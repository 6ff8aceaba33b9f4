"""Each device's message budget at the edge: a bucket per device, refilled at
`rate` messages a second up to `burst`. A faulty or hostile dock that sends as
fast as its link allows is cut off at its budget before the edge decodes or
checks anything of it, so the other devices' messages keep their pace. What
is dropped is counted per device; a dock's events are not lost by it (each
stays in the dock's journal until the edge acks it, and is sent again).

The table holds at most `max_devices` buckets: when full, the idlest half is
forgotten (a forgotten device starts again with a full bucket)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class DeviceBudget:
    def __init__(self, rate: float, burst: float, max_devices: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_devices = max_devices
        self._buckets: dict[str, _Bucket] = {}

    def take(self, device: str, now: float) -> bool:
        """One message from `device` at `now` (s, monotonic): within budget?"""
        b = self._buckets.get(device)
        if b is None:
            if len(self._buckets) >= self.max_devices:
                self._forget_idlest()
            b = self._buckets[device] = _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + max(0.0, now - b.at) * self.rate)
        b.at = now
        if b.tokens < 1.0:
            return False
        b.tokens -= 1.0
        return True

    def _forget_idlest(self) -> None:
        by_age = sorted(self._buckets.items(), key=lambda kv: kv[1].at)
        for dev, _ in by_age[:max(1, len(by_age) // 2)]:
            del self._buckets[dev]

    def __len__(self) -> int:
        return len(self._buckets)
