"""A serial cable between two pseudo-terminals, in-process: each end gets a
device path that pyserial or the MicroPython unix port opens like a UART.
The line can be made noisy (bit flips, lost and doubled bytes) or pulled out,
for tests and the simulator's faults."""

from __future__ import annotations

import asyncio
import os
import random
import tty
from pathlib import Path


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
        self.link: Path | None = None

    def open(self, link: Path | None = None) -> tuple[str, str]:
        """Both ends; with `link`, the second end is also reached by that path
        (a symlink), which vanish() removes as a pulled USB adapter's
        /dev/ttyUSB0 disappears."""
        self.link = link
        for _ in range(2):
            self._ends.append(_pty())
        self.paths = (os.ttyname(self._ends[0][1]), os.ttyname(self._ends[1][1]))
        loop = asyncio.get_running_loop()
        for i in range(2):
            loop.add_reader(self._ends[i][0], self._pump, i)
        self._link()
        return self.paths

    def _link(self) -> None:
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            self.link.unlink(missing_ok=True)
            self.link.symlink_to(self.paths[1])

    def vanish(self) -> None:
        """The second end's port goes away: its reader sees the line hang up
        and its path no longer opens, until reappear()."""
        if self.link is None or self._ends[1][0] < 0:
            return
        master, slave = self._ends[1]
        asyncio.get_running_loop().remove_reader(master)
        os.close(master)
        os.close(slave)
        self._ends[1] = (-1, -1)
        self.link.unlink(missing_ok=True)

    def reappear(self) -> None:
        """Plugged back: a new port behind the same path."""
        if self.link is None or self._ends[1][0] >= 0:
            return
        self._ends[1] = _pty()
        self.paths = (self.paths[0], os.ttyname(self._ends[1][1]))
        asyncio.get_running_loop().add_reader(self._ends[1][0], self._pump, 1)
        self._link()

    def _pump(self, i: int) -> None:
        src = self._ends[i][0]
        dst = self._ends[1 - i][0]
        if src < 0:
            return
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
        if dst < 0:
            return  # that end's port is gone (vanish())
        try:
            os.write(dst, data)
        except (BlockingIOError, OSError):
            pass  # the far end is not reading (or gone): a real line drops bytes too

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for master, slave in self._ends:
            if master < 0:
                continue
            loop.remove_reader(master)
            os.close(master)
            os.close(slave)
        self._ends = []
        if self.link is not None:
            self.link.unlink(missing_ok=True)


def _pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave
