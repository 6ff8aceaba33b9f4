"""A serial cable between two pseudo-terminals, in-process: each end gets a
device path that pyserial or the MicroPython unix port opens like a UART.
The line can be made noisy (bit flips, lost and doubled bytes) or pulled out,
for tests and the simulator's faults."""

from __future__ import annotations

import asyncio
import os
import random
import tty


class SerialLine:
    def __init__(self, noise: float = 0.0, loss: float = 0.0, seed: int | None = None,
                 record: bool = False, baud: int = 0) -> None:
        self.noise = noise  # per-byte probability of a flipped bit
        self.loss = loss  # per-byte probability of a lost byte
        self.dup = 0.0  # per-byte probability of a byte sent twice
        self.plugged = True
        self._rng = random.Random(seed)
        self._ends: list[tuple[int, int]] = []
        self.paths: tuple[str, str] = ("", "")
        self.bytes = [0, 0]
        self.taps: list[bytearray] = [bytearray(), bytearray()]
        self.record = record  # keep every byte (privacy scans read them)
        # 0: instant (ptys have no clock); else bytes arrive at this rate, 8N1.
        self.baud = baud
        self._free_at = [0.0, 0.0]

    def open(self) -> tuple[str, str]:
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._ends.append((master, slave))
        self.paths = (os.ttyname(self._ends[0][1]), os.ttyname(self._ends[1][1]))
        loop = asyncio.get_running_loop()
        for i in range(2):
            loop.add_reader(self._ends[i][0], self._pump, i)
        return self.paths

    def _pump(self, i: int) -> None:
        src = self._ends[i][0]
        dst = self._ends[1 - i][0]
        try:
            data = os.read(src, 4096)
        except (BlockingIOError, OSError):
            return
        if not self.plugged or not data:
            return
        if self.noise or self.loss or self.dup:
            out = bytearray()
            for b in data:
                if self._rng.random() < self.loss:
                    continue
                if self._rng.random() < self.noise:
                    b ^= 1 << self._rng.randrange(8)
                out.append(b)
                if self._rng.random() < self.dup:
                    out.append(b)
            data = bytes(out)
        self.bytes[i] += len(data)
        if self.record:
            self.taps[i] += data
        if self.baud:
            loop = asyncio.get_running_loop()
            start = max(loop.time(), self._free_at[i])
            self._free_at[i] = start + len(data) * 10 / self.baud
            loop.call_at(self._free_at[i], self._deliver, dst, data)
            return
        self._deliver(dst, data)

    @staticmethod
    def _deliver(dst: int, data: bytes) -> None:
        try:
            os.write(dst, data)
        except (BlockingIOError, OSError):
            pass  # the far end is not reading (or gone): a real line drops bytes too

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for master, slave in self._ends:
            loop.remove_reader(master)
            os.close(master)
            os.close(slave)
        self._ends = []
