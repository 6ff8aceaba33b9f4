"""A new dock board on the technician's bench (`huimin sim --bench`): somewhere
to practise `flash`, `provision`, `console` and `diag` as on a board fresh from
the factory, inside a running town.

- Its USB console is a pseudo-terminal at <dir>/bench/tty, behind which runs
  the MicroPython unix port: a bare REPL while its flash is blank, as a new board
  answers; once flashed and provisioned, a reset boots its firmware with the
  console on the same terminal, and a Ctrl-C (mpremote's, before every command)
  interrupts it into the REPL, as on a board.
- A reset (`machine.reset()`; on this port the interpreter's exit) powers it up
  again, the terminal gone for a moment as a board's USB port is.
- Its hardware (4 slots, a bike in one) is emulated; its cable to the edge is
  already in the edge's [[serial]] list, for the device id it is to be given:
  the cable is that device's credential, as on a Pi.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from pathlib import Path

from hardware.dock_emulator import DockEmulator
from hardware.serial_line import SerialLine
from tools.firmware import micropython_path

log = logging.getLogger("sim.bench")

SLOTS = 4
# A new board's REPL has the memory a chip has before any app is loaded; the
# flashing tool's hashing and writing run in it.
HEAP = "256K"


class BenchBoard:
    def __init__(self, root: Path, dev: str, station: str, bike: str) -> None:
        self.dir = root / "bench"
        self.fs = self.dir / "fs"  # the board's flash
        self.tty = self.dir / "tty"  # its USB console
        self.dev = dev  # the id the technician is to give it
        self.station = station
        self.emulator = DockEmulator(dev, SLOTS, {1: bike})
        self.line = SerialLine()  # its cable to the edge
        self.bus = ""
        self.boots = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    def open_line(self) -> str:
        """The cable, before the edge's configuration is written: the edge's end."""
        self.line.open()
        return self.line.paths[1]

    async def start(self) -> None:
        if shutil.which("socat") is None:
            raise RuntimeError("the bench board needs socat (Debian: apt install socat)")
        self.bus = await self.emulator.start()
        if self.fs.exists():
            shutil.rmtree(self.fs)  # fresh from the factory on every run
        self.fs.mkdir(parents=True)
        self._task = asyncio.create_task(self._power(), name="bench-board")
        async with asyncio.timeout(10):
            while not self.tty.exists():  # noqa: ASYNC110 (socat makes it)
                await asyncio.sleep(0.05)

    def booting_firmware(self) -> bool:
        """What a power-up runs: the firmware once it is flashed and provisioned."""
        return (self.fs / "main.py").exists() and (self.fs / "config.json").exists()

    async def _power(self) -> None:
        """Power the board up, and again after every reset."""
        env = {**os.environ, "HUIMIN_BOARD_BUS": self.bus}
        while True:
            # -i: the REPL when the firmware ends, by Ctrl-C or by error, as a board's.
            interpreter = [micropython_path(), "-X", f"heapsize={HEAP}",
                           *(["-i", "main.py"] if self.booting_firmware() else [])]
            self.tty.unlink(missing_ok=True)
            # The board's side keeps ISIG (Ctrl-C interrupts the running firmware)
            # but passes bytes as they come (no line buffering, no CR added).
            self._proc = await asyncio.create_subprocess_exec(
                "socat", f"pty,raw,echo=0,link={self.tty}",
                f"EXEC:{' '.join(interpreter)},pty,stderr,setsid,ctty,echo=0,opost=0,icanon=0",
                cwd=self.fs, env=env, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
            await self._proc.wait()
            self.boots += 1
            log.info("bench board reset (power-up %d)", self.boots + 1)
            await asyncio.sleep(0.3)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()
        self.tty.unlink(missing_ok=True)
        await self.emulator.close()
        self.line.close()

    def practice(self, site: str, edge: str, token_file: Path, ota_key: str) -> list[str]:
        """The command lines to try on it, in order, ready to paste."""
        port = self.tty
        return [
            f"huimin flash --port {port}",
            f"huimin provision --port {port} --dev {self.dev} --kind dock --site {site} "
            f"--station {self.station} --slots {SLOTS} --uart {self.line.paths[0]} "
            + (f"--ota-key {ota_key} " if ota_key else "")
            + f"--edge {edge} --token-file {token_file}",
            f"huimin console --port {port}",
            f"huimin fleet --edge {edge} --token-file {token_file}",
            f"huimin diag --port {port}",
        ]
