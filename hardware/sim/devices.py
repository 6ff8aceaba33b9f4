"""The simulated town's devices: each a firmware image installed on its own
folder (its flash), run by the MicroPython unix port in its heap, wired to
emulated hardware, and restarted when it exits (its watchdog, on unix)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.adapters.device_keys import write_private
from hardware.dock_emulator import DockEmulator
from hardware.esp32s3_board import Esp32s3Board
from hardware.idcard_emulator import IdCardModule
from hardware.kiosk_emulator import HmiScreen, VoiceModule
from hardware.serial_line import SerialLine
from hardware.sim.relay import Relay
from hardware.sim.spec import TownSpec
from tools.broker import Broker
from tools.firmware import build_rom, install, micropython_path

log = logging.getLogger("sim")


@dataclass
class SimDock:
    dev: str
    station: str
    link: str  # "serial" or "mqtt"
    slots: int
    emulator: DockEmulator
    flash: Path
    line: SerialLine | None = None
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    log_path: Path = field(default_factory=Path)
    config: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # command_key, mqtt password
    radio: Relay | None = None  # an ESP32-S3 board's Wi-Fi: its way to the broker

    @property
    def board(self) -> Esp32s3Board | None:
        return getattr(self.emulator, "board", None)


@dataclass
class SimKiosk:
    dev: str
    flash: Path
    link: str = "serial"  # or "mqtt"
    lines: dict[str, SerialLine] = field(default_factory=dict)
    module: IdCardModule | None = None
    screen: HmiScreen | None = None
    voice: VoiceModule | None = None
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    log_path: Path = field(default_factory=Path)
    secrets: dict[str, str] = field(default_factory=dict)
    board: Esp32s3Board | None = None  # the emulated ESP32-S3, when it runs the board's hal
    radio: Relay | None = None


async def make_kiosk(dev: str, flash: Path, link: str, baud: int,
                     board: dict[str, Any] | None = None) -> SimKiosk:
    """A kiosk's emulated card module, display and voice, each on its own line
    (and the edge's line, on serial); with `board` (a board file), on the
    emulated ESP32-S3 whose UARTs they are wired to."""
    k = SimKiosk(dev, flash, link)
    for name in ("edge", "sam", "display", "voice") if link == "serial" else (
            "sam", "display", "voice"):
        k.lines[name] = SerialLine(record=name != "sam", baud=baud)
        k.lines[name].open()
    k.module = IdCardModule(k.lines["sam"].paths[1])
    k.screen = HmiScreen(k.lines["display"].paths[1])
    k.voice = VoiceModule(k.lines["voice"].paths[1])
    for peer in (k.module, k.screen, k.voice):
        await peer.start()
    if board is not None:
        uarts = {u["id"]: k.lines[name].paths[0] for name, u in board["uarts"].items()}
        k.board = Esp32s3Board(dev, board, uarts, wifi=WIFI)
        await k.board.start()
    return k


# The simulated town's Wi-Fi (the boards' access point; a county has one per
# village service centre or station cluster).
WIFI = {"ssid": "huimin-sim", "password": "sim-wifi-not-a-secret"}


class Firmware:
    """Installs and runs the devices' firmware."""

    def __init__(self, images: dict[str, Path], spec: TownSpec, ca_der: Path,
                 broker: Broker | None, region_key: bytes) -> None:
        self.images = images  # kind -> image: one for both on the unix port
        self.rom = build_rom() if spec.board != "unix" else None
        self.spec = spec
        self.ca_der = ca_der
        self.broker = broker
        self.region_key = region_key
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def _mqtt(self, d: SimDock | SimKiosk) -> dict[str, Any]:
        assert self.broker is not None and self.broker.tls_port is not None
        shutil.copyfile(self.ca_der, d.flash / "ca.der")
        port = self.broker.tls_port
        if d.board is not None:
            # A board reaches the broker by Wi-Fi: a relay that a drop cuts.
            if d.radio is None:
                d.radio = Relay(port, f"wifi:{d.dev}")
                await d.radio.start()
            port = d.radio.port
        return {"host": "127.0.0.1", "port": port, "keepalive": 15,
                "user": d.dev, "password": d.secrets["mqtt_password"], "ca": "ca.der"}

    async def start_dock(self, d: SimDock) -> None:
        spec = self.spec
        if d.board is not None:
            bus = ""  # the board's hal finds its pins in the board file
            uart = "edge" if d.line else ""
            if not d.emulator.port:
                await d.emulator.start()
        else:
            bus = (d.emulator.port and f"127.0.0.1:{d.emulator.port}") or await d.emulator.start()
            uart = d.line.paths[0] if d.line else ""
        d.flash.mkdir(parents=True, exist_ok=True)
        d.config = {"dev": d.dev, "site": self.spec.site, "kind": "dock", "slots": d.slots,
                    "link": d.link, "bus": bus, "heartbeat_s": spec.heartbeat_s,
                    "uart": uart, "ota_key": spec.ota_key,
                    "ota_confirm_s": spec.ota_confirm_s,
                    "cmd_key": d.secrets["command_key"], **spec.dock_config}
        if d.link == "mqtt" and self.broker is not None:
            d.config["mqtt"] = await self._mqtt(d)
            if d.board is not None:
                d.config["wifi"] = WIFI
        self._run(d, d.config, spec.dock_heap(d.link))

    async def start_kiosk(self, k: SimKiosk) -> None:
        spec = self.spec
        k.flash.mkdir(parents=True, exist_ok=True)
        cfg = {"dev": k.dev, "site": self.spec.site, "kind": "kiosk", "link": k.link,
               "uart": k.lines["edge"].paths[0] if "edge" in k.lines else "",
               "sam_uart": k.lines["sam"].paths[0],
               "display_uart": k.lines["display"].paths[0],
               "voice_uart": k.lines["voice"].paths[0],
               "region_key": "efuse" if spec.kiosk_key_store else self.region_key.hex(),
               "heartbeat_s": spec.heartbeat_s, "show_s": 30, "ota_key": spec.ota_key,
               "ota_confirm_s": spec.ota_confirm_s, "cmd_key": k.secrets["command_key"]}
        if spec.kiosk_poll_ms is not None:
            cfg["poll_ms"] = spec.kiosk_poll_ms
        if k.link == "mqtt" and self.broker is not None:
            cfg["mqtt"] = await self._mqtt(k)
            if k.board is not None:
                cfg["wifi"] = WIFI
        if spec.kiosk_key_store:
            write_private(k.flash / "efuse_key", self.region_key.hex())
        self._run(k, cfg, spec.kiosk_heap_for())

    def _run(self, d: SimDock | SimKiosk, cfg: dict[str, Any], heap: str) -> None:
        write_private(d.flash / "config.json", json.dumps(cfg))
        d.log_path = d.flash / "console.log"
        # The firmware sits on the device's filesystem, as after `flash`; short
        # relative paths also keep the interpreter's interned import paths small.
        install(self.images["dock" if isinstance(d, SimDock) else "kiosk"], d.flash)
        self.tasks.append(asyncio.create_task(self._supervise(d, heap), name=f"fw:{d.dev}"))

    async def _supervise(self, d: SimDock | SimKiosk, heap: str) -> None:
        """Run the firmware; restart it when it exits (its watchdog/reset on unix)."""
        env = None
        if d.board is not None and self.rom is not None:
            # The port's built-in modules after the device's own files, as a
            # chip's firmware holds them; its watchdog resets it by a kill.
            env = {**os.environ, "MICROPYPATH": f":.frozen:{self.rom}"}
            d.board.on_watchdog = lambda: d.proc.kill() if d.proc is not None else None
        while not self.stopping.is_set():
            if d.board is not None:
                d.board.powered_up(d.flash)
            with open(d.log_path, "ab") as out:  # noqa: ASYNC230 (opening a log is instant)
                d.proc = await asyncio.create_subprocess_exec(
                    micropython_path(), "-X", f"heapsize={heap}", "main.py", cwd=d.flash,
                    stdout=out, stderr=out, env=env)
                rc = await d.proc.wait()
            if self.stopping.is_set():
                return
            d.restarts += 1
            log.warning("%s firmware exited (%s); restarting", d.dev, rc)
            await asyncio.sleep(0.5)

    async def stop(self, devices: list[SimDock | SimKiosk]) -> None:
        self.stopping.set()
        for d in devices:
            if d.proc is not None and d.proc.returncode is None:
                d.proc.terminate()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(5):
                    await t
