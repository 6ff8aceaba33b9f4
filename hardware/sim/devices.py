"""The simulated town's devices: each a firmware image installed on its own
folder (its flash), run by the MicroPython unix port in its heap, wired to
emulated hardware, and restarted when it exits (its watchdog, on unix)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.adapters.device_keys import write_private
from hardware.dock_emulator import DockEmulator
from hardware.idcard_emulator import IdCardModule
from hardware.kiosk_emulator import HmiScreen, VoiceModule
from hardware.serial_line import SerialLine
from hardware.sim.spec import TownSpec
from tools.broker import Broker
from tools.firmware import install, micropython_path

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


async def make_kiosk(dev: str, flash: Path, link: str, baud: int) -> SimKiosk:
    """A kiosk's emulated card module, display and voice, each on its own line
    (and the edge's line, on serial)."""
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
    return k


class Firmware:
    """Installs and runs the devices' firmware."""

    def __init__(self, image: Path, spec: TownSpec, ca_der: Path, broker: Broker | None,
                 region_key: bytes) -> None:
        self.image = image
        self.spec = spec
        self.ca_der = ca_der
        self.broker = broker
        self.region_key = region_key
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def _mqtt(self, d: SimDock | SimKiosk) -> dict[str, Any]:
        assert self.broker is not None and self.broker.tls_port is not None
        shutil.copyfile(self.ca_der, d.flash / "ca.der")
        return {"host": "127.0.0.1", "port": self.broker.tls_port, "keepalive": 15,
                "user": d.dev, "password": d.secrets["mqtt_password"], "ca": "ca.der"}

    async def start_dock(self, d: SimDock) -> None:
        spec = self.spec
        bus = (d.emulator.port and f"127.0.0.1:{d.emulator.port}") or await d.emulator.start()
        d.flash.mkdir(parents=True, exist_ok=True)
        d.config = {"dev": d.dev, "site": self.spec.site, "kind": "dock", "slots": d.slots,
                    "link": d.link, "bus": bus, "heartbeat_s": spec.heartbeat_s,
                    "uart": d.line.paths[0] if d.line else "", "ota_key": spec.ota_key,
                    "ota_confirm_s": spec.ota_confirm_s,
                    "cmd_key": d.secrets["command_key"], **spec.dock_config}
        if d.link == "mqtt" and self.broker is not None:
            d.config["mqtt"] = self._mqtt(d)
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
        if k.link == "mqtt" and self.broker is not None:
            cfg["mqtt"] = self._mqtt(k)
        if spec.kiosk_key_store:
            write_private(k.flash / "efuse_key", self.region_key.hex())
        self._run(k, cfg, spec.kiosk_heap_for())

    def _run(self, d: SimDock | SimKiosk, cfg: dict[str, Any], heap: str) -> None:
        write_private(d.flash / "config.json", json.dumps(cfg))
        d.log_path = d.flash / "console.log"
        # The firmware sits on the device's filesystem, as after `flash`; short
        # relative paths also keep the interpreter's interned import paths small.
        install(self.image, d.flash)
        self.tasks.append(asyncio.create_task(self._supervise(d, heap), name=f"fw:{d.dev}"))

    async def _supervise(self, d: SimDock | SimKiosk, heap: str) -> None:
        """Run the firmware; restart it when it exits (its watchdog/reset on unix)."""
        while not self.stopping.is_set():
            with open(d.log_path, "ab") as out:  # noqa: ASYNC230 (opening a log is instant)
                d.proc = await asyncio.create_subprocess_exec(
                    micropython_path(), "-X", f"heapsize={heap}", "main.py", cwd=d.flash,
                    stdout=out, stderr=out)
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
