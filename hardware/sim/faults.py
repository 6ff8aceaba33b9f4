"""Faults the simulator injects on purpose (`huimin sim --faults`), at set
times or at random with a seed, as a county's town meets them: a broker that
dies or freezes, an edge killed, a backend down, slow or failing, a dock's
power cut, a noisy or unplugged serial cable, a jump of the edge's clock.

A schedule is a preset's name or a TOML file of faults:

    [[fault]]
    at = 10          # seconds after the town is up
    kind = "broker_freeze"
    for = 8          # how long it lasts (s)
    target = ""      # a device id, where the kind takes one (default: random)
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sqlite3
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hardware.serial_line import SerialLine

if TYPE_CHECKING:
    from hardware.sim.devices import SimDock, SimKiosk
    from hardware.sim.town import Town

log = logging.getLogger("sim.faults")

KINDS = {
    "broker_kill": "Mosquitto killed (SIGKILL); its supervisor restarts it",
    "broker_freeze": "Mosquitto frozen (SIGSTOP: a silent partition, no FIN), then thawed",
    "edge_kill": "the edge process killed (SIGKILL), restarted after `for` seconds",
    "backend_down": "the city backend answers 503 with Retry-After",
    "backend_500": "the city backend answers 500",
    "backend_slow": "the city backend takes 2 s over every answer",
    "dock_power_cut": "a dock's firmware killed mid-run (its flash kept), restarted",
    "serial_noise": "a serial cable flips bits, loses and doubles bytes",
    "serial_unplug": "a dock's USB serial adapter pulled out at the edge (its port vanishes),"
                     " plugged back after `for` seconds",
    "clock_jump": "the edge's clock jumps an hour ahead",
    "edge_disk_full": "the edge's disk fills up (writes refused), then has room again",
    "wifi_drop": "an ESP32-S3 board's access point goes out of reach (its links cut, new ones "
                 "refused), back after `for` seconds (--board esp32s3)",
    "loop_stall": "a device's interpreter hangs until an ESP32-S3 board's watchdog resets it; "
                  "a unix-port device (no watchdog) resumes after `for` seconds",
}


@dataclass(frozen=True)
class Fault:
    at: float  # s after start
    kind: str
    for_s: float = 5.0
    target: str = ""


def preset(name: str, seed: int | None = None) -> list[Fault]:
    """each: one fault of every kind the town can take, 20 s apart.
    random: 12 faults of random kinds at random times in 4 minutes."""
    if name == "each":
        return [Fault(10 + 20 * i, k, 6.0) for i, k in enumerate(KINDS)]
    if name == "random":
        rng = random.Random(seed)
        return sorted((Fault(rng.uniform(5, 240), rng.choice(list(KINDS)), rng.uniform(2, 10))
                       for _ in range(12)), key=lambda f: f.at)
    raise ValueError(f"no preset {name!r}: each, random, or a TOML file")


def load(spec: str, seed: int | None = None) -> list[Fault]:
    """A preset's name, or a TOML schedule file."""
    path = Path(spec)
    if not path.is_file():
        if path.suffix == ".toml" or "/" in spec:
            raise ValueError(f"no such schedule file: {path}")
        return preset(spec, seed)
    try:
        schedule = tomllib.loads(path.read_text(encoding="utf-8")).get("fault", [])
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a TOML schedule ({exc})") from None
    faults = []
    for i, f in enumerate(schedule):
        where = f"{path}, fault {i + 1}"
        kind = str(f.get("kind", ""))
        if kind not in KINDS:
            raise ValueError(f"{where}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
        try:
            at, for_s = float(f.get("at", 0)), float(f.get("for", 5))
        except (TypeError, ValueError):
            raise ValueError(f"{where}: `at` and `for` are seconds, as numbers") from None
        if at < 0 or for_s <= 0:
            raise ValueError(f"{where}: `at` must be 0 or more and `for` more than 0")
        faults.append(Fault(at, kind, for_s, str(f.get("target", ""))))
    return sorted(faults, key=lambda f: f.at)


class Injector:
    def __init__(self, town: Town, seed: int | None = None) -> None:
        self.town = town
        self.rng = random.Random(seed)
        self.done: list[str] = []  # what was injected, for the closing summary

    async def run(self, schedule: list[Fault]) -> None:
        t0 = time.monotonic()
        running: set[asyncio.Task[None]] = set()
        for f in schedule:
            await asyncio.sleep(max(0.0, t0 + f.at - time.monotonic()))
            t = asyncio.create_task(self.inject(f), name=f"fault:{f.kind}")
            running.add(t)
            t.add_done_callback(running.discard)
        if running:
            await asyncio.wait(running)

    async def inject(self, f: Fault) -> None:
        what = await getattr(self, "_" + f.kind)(f)
        self.done.append(f"{f.kind}: {what}")

    # -- the kinds --------------------------------------------------------------------
    def _dock(self, f: Fault, link: str | None = None) -> str:
        docks = [d for d in self.town.docks if link is None or d.link == link]
        if f.target:
            return next(d.dev for d in docks if d.dev == f.target)
        return self.rng.choice(docks).dev if docks else ""

    async def _broker_kill(self, f: Fault) -> str:
        b = self.town.broker
        if b is None or b.proc is None:
            return "no broker (no MQTT devices)"
        log.warning("fault: killing the broker")
        b.proc.kill()
        return "killed; the supervisor restarts it"

    async def _broker_freeze(self, f: Fault) -> str:
        b = self.town.broker
        if b is None or b.proc is None or b.proc.returncode is not None:
            return "no broker running"
        log.warning("fault: freezing the broker for %.0f s", f.for_s)
        pid = b.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(f.for_s)
        finally:
            os.kill(pid, signal.SIGCONT)
        return f"frozen {f.for_s:.0f} s"

    async def _edge_kill(self, f: Fault) -> str:
        town = self.town
        if town.edge_proc is None:
            return "skipped: the edge runs in the simulator's process (--edge-process)"
        log.warning("fault: killing the edge process; restart in %.0f s", f.for_s)
        await town.kill_edge_process()
        await asyncio.sleep(f.for_s)
        await town.start_edge_process()
        return f"killed, restarted after {f.for_s:.0f} s"

    async def _backend(self, f: Fault, status: int, delay: float) -> str:
        b = self.town.backend
        if b is None:
            return "no backend"
        if delay:
            b.delay_s = delay
        else:
            b.fail_status, b.retry_after = status, 1.0 if status == 503 else None
            b.fail_until = time.monotonic() + f.for_s
        await asyncio.sleep(f.for_s)
        b.delay_s = 0.0
        return f"{'slow' if delay else status} for {f.for_s:.0f} s"

    async def _backend_down(self, f: Fault) -> str:
        return await self._backend(f, 503, 0.0)

    async def _backend_500(self, f: Fault) -> str:
        return await self._backend(f, 500, 0.0)

    async def _backend_slow(self, f: Fault) -> str:
        return await self._backend(f, 0, 2.0)

    async def _dock_power_cut(self, f: Fault) -> str:
        dev = self._dock(f)
        d = self.town.dock(dev)
        if d.proc is None or d.proc.returncode is not None:
            return f"{dev} not running"
        log.warning("fault: power cut at %s", dev)
        d.proc.kill()  # its supervisor powers it up again, on the same flash
        return f"{dev} cut"

    def _serial_line(self, f: Fault) -> tuple[str, SerialLine] | None:
        dev = self._dock(f, "serial")
        line = self.town.dock(dev).line if dev else None
        return (dev, line) if line is not None else None

    async def _serial_noise(self, f: Fault) -> str:
        found = self._serial_line(f)
        if found is None:
            return "no serial docks"
        dev, line = found
        line.noise, line.loss, line.dup = 0.002, 0.002, 0.002
        await asyncio.sleep(f.for_s)
        line.noise = line.loss = line.dup = 0.0
        return f"{dev}'s line noisy for {f.for_s:.0f} s"

    async def _serial_unplug(self, f: Fault) -> str:
        found = self._serial_line(f)
        if found is None:
            return "no serial docks"
        dev, line = found
        log.warning("fault: %s's serial adapter pulled out for %.0f s", dev, f.for_s)
        line.vanish()  # the edge's port goes: its reads fail, its path does not open
        await asyncio.sleep(f.for_s)
        line.reappear()
        return f"{dev}'s adapter out for {f.for_s:.0f} s"

    def _board_device(self, f: Fault, radio: bool) -> SimDock | SimKiosk | None:
        """A device on the emulated board (with Wi-Fi, if `radio`), else any
        device; f.target picks one by name."""
        devices: list[SimDock | SimKiosk] = [*self.town.docks, *self.town.kiosks]
        if f.target:
            return next((d for d in devices if d.dev == f.target), None)
        on_board = [d for d in devices if d.board is not None and (d.radio or not radio)]
        if on_board:
            return self.rng.choice(on_board)
        return None if radio or not devices else self.rng.choice(devices)

    async def _wifi_drop(self, f: Fault) -> str:
        d = self._board_device(f, radio=True)
        if d is None or d.board is None or d.radio is None:
            return "skipped: no device on Wi-Fi (huimin sim --board esp32s3)"
        log.warning("fault: %s's Wi-Fi out of reach for %.0f s", d.dev, f.for_s)
        d.board.set_wifi(False)
        d.radio.set_cut(True)
        try:
            await asyncio.sleep(f.for_s)
        finally:
            d.radio.set_cut(False)
            d.board.set_wifi(True)
        return f"{d.dev}'s Wi-Fi out for {f.for_s:.0f} s"

    async def _loop_stall(self, f: Fault) -> str:
        d = self._board_device(f, radio=False)
        proc = d.proc if d is not None else None
        if d is None or proc is None or proc.returncode is not None:
            return "no device running"
        log.warning("fault: %s's interpreter hangs", d.dev)
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            # A hung chip stays hung: only its watchdog (or `for` on a port without one,
            # or a minute, should the watchdog never fire) ends it.
            async with asyncio.timeout(60.0 if d.board is not None else f.for_s):
                await proc.wait()  # the watchdog's reset ends it
            return f"{d.dev} hung; its watchdog reset it"
        except TimeoutError:
            os.kill(proc.pid, signal.SIGCONT)
            return f"{d.dev} hung {f.for_s:.0f} s, then resumed (no watchdog on this port)"

    async def _clock_jump(self, f: Fault) -> str:
        if self.town.edge is None:
            return "skipped: the edge is its own process"
        self.town.edge_clock.offset += 3600
        return "the edge's clock is an hour ahead"


    async def _edge_disk_full(self, f: Fault) -> str:
        edge = self.town.edge
        if edge is None:
            return "skipped: the edge is its own process"
        store = edge.store
        configured = store.max_mb
        # No room left: the database may not grow past its size now, and what
        # free pages it has are taken (a full disk refuses every new page).
        await store.set_size_limit(await store.size_mb())
        n = 0
        for size in (4096, 1024, 256, 64, 16, 1):  # big rows, then what still fits
            try:
                while n < 100_000:
                    await store.meta_put(f"fault-fill-{n}", "x" * size)
                    n += 1
            except sqlite3.OperationalError:
                continue
        log.warning("fault: the edge's disk is full for %.0f s", f.for_s)
        await asyncio.sleep(f.for_s)
        await store.meta_forget("fault-fill-")
        await store.set_size_limit(configured)
        return f"full for {f.for_s:.0f} s"
