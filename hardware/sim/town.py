"""A simulated town on one machine: the county's secure setup (CA, brokers with
accounts and ACLs, device keys), docks and kiosks running their firmware under
the MicroPython unix port with emulated hardware, the development city
backend, and the edge, in this process or as its own (as on a Pi).

    async with Town(tmp, docks=2, kiosks=1) as town:   # options: hardware/sim/spec.py
        await town.wait_online()
        bike = await town.rent(town.docks[0])
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from edge import config as edge_config
from edge.adapters.api_tokens import ApiTokens
from edge.adapters.device_keys import dump_devices, write_private
from edge.config import EdgeConfig
from edge.runtime import Edge
from hardware.dock_emulator import DockEmulator
from hardware.esp32s3_dock import Esp32s3Dock
from hardware.idcard_emulator import Card
from hardware.serial_line import SerialLine
from hardware.sim.backend import DevBackend
from hardware.sim.bench import BenchBoard
from hardware.sim.devices import WIFI, Firmware, SimDock, SimKiosk, make_kiosk
from hardware.sim.edge_setup import CityAccess, Provisioning, Uplinks, edge_toml
from hardware.sim.people import Riders, Villagers
from hardware.sim.screens import ScreenMirror
from hardware.sim.spec import TownSpec
from tools.broker import Broker, TlsFiles, free_port, mosquitto_path
from tools.ca import county_tls
from tools.firmware import BOARDS, build

log = logging.getLogger("sim")
ROOT = Path(__file__).resolve().parents[2]
STALE = ("tty", "edge.db", "edge.db-wal", "edge.db-shm", "broker", "devices", "backend.db",
         "backend.db-wal", "backend.db-shm", "city-broker", "ca", "device-keys.toml",
         "device-keys.toml.counter", "api-tokens.toml", "technician-token")


class EdgeClock:
    """The in-process edge's wall clock, which a fault can move (a clock jump)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Town:
    def __init__(self, workdir: Path, city: CityAccess | None = None, **options: Any) -> None:
        """city: this town is one site of a city (hardware/sim/city.py): its
        backend is the city's, its uplink the city tier."""
        self.dir = workdir
        self.city = city
        self.spec = spec = TownSpec(**options)
        self.rng = random.Random(spec.seed)
        self.use_mqtt = mosquitto_path() is not None if spec.use_mqtt is None else spec.use_mqtt
        self.http_port = spec.http_port
        # The site's key at the backend.
        self.secret = city.secret if city else "dev-secret-" + "0123456789abcdef"
        self.region_key = bytes(range(1, 33))  # provisioned on kiosks (tools: provision)
        self.docks: list[SimDock] = []
        self.kiosks: list[SimKiosk] = []
        self.broker: Broker | None = None
        self.city_broker: Broker | None = None  # the city's broker, for the MQTT uplink
        self.backend: DevBackend | None = None
        self.backend_url = ""
        self.edge: Edge | None = None
        self.edge_clock = EdgeClock()
        self.edge_proc: asyncio.subprocess.Process | None = None
        self.cfg: EdgeConfig | None = None
        self.tls: TlsFiles | None = None
        self.token = ""  # a technician's API token for this town's edge
        self.edge_mqtt_password = ""
        self.bridge_password = self.city_backend_password = ""
        self._firmware: Firmware | None = None
        self._edge_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._bike_no = 0
        self._riders: Riders | None = None
        self._broker_task: asyncio.Task[None] | None = None
        self._villagers: Villagers | None = None
        self.screens: ScreenMirror | None = None  # the kiosks' screens, for the dashboard
        self.bench: BenchBoard | None = None  # a new board to practise on (--bench)

    # -- set-up, step by step ------------------------------------------------------------
    async def start(self) -> None:
        self._clean()
        if self.spec.board == "unix":
            images = dict.fromkeys(("dock", "kiosk"), build("unix"))
        else:
            images = {"dock": build(self.spec.board), "kiosk": build(f"{self.spec.board}-kiosk")}
        self._county()
        await self._make_devices()
        await self._city()
        if self.kiosks:
            self.screens = ScreenMirror({k.dev: k.screen for k in self.kiosks
                                         if k.screen is not None})
            await self.screens.start()
        self._write_edge_config()
        if self.spec.edge_process:
            await self.start_edge_process()
        else:
            await self._start_edge_here()
        self._firmware = Firmware(images, self.spec, self.dir / "ca" / "ca.der", self.broker,
                                  self.region_key)
        for d in self.docks:
            await self._firmware.start_dock(d)
        for k in self.kiosks:
            await self._firmware.start_kiosk(k)
        if self.bench is not None:
            await self.bench.start()
        self._riders = Riders(self.rng, self.docks, self.backend, self.backend_url, self.edge,
                              self.spec.site)
        self._villagers = Villagers(self.rng, self.kiosks, self.region_key, self.backend,
                                    self.backend_url)

    def _clean(self) -> None:
        """What an earlier run left in the working folder goes first."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in STALE:
            p = self.dir / stale
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def _county(self) -> None:
        """The county's setup, as docs/deploy.md makes it: a CA, the broker's
        certificate, an account for the edge (each MQTT device gets its own)."""
        if self.use_mqtt:
            self.tls = county_tls(self.dir / "ca", ["127.0.0.1", "localhost"])
            self.broker = Broker(self.dir / "broker", tls=self.tls, site=self.spec.site)
            self.edge_mqtt_password = self.broker.account("huimin-edge", "edge")

    def _new_bike(self) -> str:
        self._bike_no += 1
        return f"0B{self._bike_no:08X}"

    async def _make_devices(self) -> None:
        spec, devices = self.spec, self.dir / "devices"
        provisioning = Provisioning(self.broker)
        n_mqtt = round(spec.docks * (spec.mqtt_share if self.use_mqtt else 0.0))
        for i in range(spec.docks):
            dev = f"dock-{i + 1:03d}"
            link = "mqtt" if i >= spec.docks - n_mqtt else "serial"
            bikes = {s: self._new_bike() for s in range(spec.slots)
                     if self.rng.random() < spec.fill}
            line = None
            if link == "serial":
                line = SerialLine()
                # The edge opens the line by a path that can vanish, as a
                # USB adapter's /dev/ttyUSB0 does when pulled out.
                line.open(link=self.dir / "tty" / dev)
            emulator = (DockEmulator(dev, spec.slots, bikes) if spec.board == "unix" else
                        Esp32s3Dock(dev, spec.slots, bikes, line.paths[0] if line else "", WIFI))
            d = SimDock(dev, f"{spec.site}-{i + 1:03d}", link, spec.slots, emulator,
                        devices / dev, line)
            provisioning.provision(d)
            self.docks.append(d)
        for i in range(spec.kiosks):
            link = "mqtt" if spec.kiosk_link == "mqtt" and self.broker is not None else "serial"
            dev = f"kiosk-{i + 1:03d}"
            board = None
            if spec.board != "unix":
                if link != "mqtt":
                    raise ValueError("a kiosk on the ESP32-S3 board reaches the edge by MQTT "
                                     "over Wi-Fi (its board has no UART left for a cable)")
                board = json.loads((BOARDS / "esp32s3_kiosk.json").read_text())
            k = await make_kiosk(dev, devices / dev, link, spec.baud, board)
            provisioning.provision(k)
            self.kiosks.append(k)
        if spec.bench:
            # The next dock, at the first station: its keys are made by `huimin
            # provision` on the bench, not here.
            self.bench = BenchBoard(self.dir, f"dock-{spec.docks + 1:03d}",
                                    self.docks[0].station, self._new_bike())
            self.bench.open_line()
        write_private(self.dir / "device-keys.toml", dump_devices(provisioning.entries))
        # The simulator's technician (huimin token add sim --out ...): what the
        # technician tools send the edge's API.
        self.token = ApiTokens(self.dir / "api-tokens.toml").add("sim")
        write_private(self.dir / "technician-token", self.token + "\n")
        if self.broker is not None:
            await self.broker.start()
            self._broker_task = asyncio.create_task(self._supervise_broker(self.broker),
                                                    name="broker-supervisor")

    async def _supervise_broker(self, broker: Broker) -> None:
        """Mosquitto restarted when it dies, as systemd's Restart=always does
        on a Pi (the faults kill it); a stop on purpose is left alone."""
        while not self._stop.is_set():
            proc = broker.proc
            if proc is None or broker.stopped:
                await asyncio.sleep(0.2)
                continue
            await proc.wait()
            if self._stop.is_set() or broker.stopped or broker.proc is not proc:
                continue
            log.warning("broker exited (%s); restarting it in 1 s", proc.returncode)
            await asyncio.sleep(1.0)
            if not broker.stopped and not self._stop.is_set():
                await broker.start()

    async def _city(self) -> None:
        """The city's side: its broker (for an MQTT uplink) and its backend."""
        if self.spec.city_broker:
            self.city_broker = Broker(self.dir / "city-broker")
            self.bridge_password = self.city_broker.account(f"bridge-{self.spec.site}",
                                                            "bridge")
            self.city_backend_password = self.city_broker.account("city-backend", "backend")
            await self.city_broker.start()
        if self.city is not None:
            self.backend, self.backend_url = self.city.backend, self.city.backend_url
        elif self.spec.backend:
            # The city gives each site its own key (one shared key would let any
            # edge act for any other).
            self.backend = DevBackend(self.dir / "backend.db",
                                      {self.spec.site: self.secret})
            self.backend_url = await self.backend.start()

    def _write_edge_config(self) -> None:
        if self.http_port == 0:
            self.http_port = free_port()
        if self.spec.metrics_port == 0:
            self.spec = replace(self.spec, metrics_port=free_port())
        city = self.city
        uplinks = Uplinks(self.secret, "" if city else self.backend_url,
                          self.city_broker.url if self.city_broker else "", self.bridge_password,
                          ",".join(city.urls) if city else "", str(city.ca) if city else "",
                          city.password if city else "")
        screens = {k.dev: self.screens.url(k.dev) for k in self.kiosks} if self.screens else {}
        toml = edge_toml(self.spec, self.dir, self.rng, self.http_port, self.broker,
                         self.edge_mqtt_password, uplinks, self.docks, self.kiosks, screens,
                         self.bench)
        write_private(self.dir / "edge.toml", toml)  # it holds the edge's broker password
        self.cfg = edge_config.load(self.dir / "edge.toml")

    async def _start_edge_here(self) -> None:
        assert self.cfg is not None
        self.edge = Edge(self.cfg, self.edge_clock)
        self._edge_task = asyncio.create_task(self.edge.run(self._stop), name="edge")
        ready = asyncio.create_task(self.edge.ready.wait(), name="edge-ready")
        await asyncio.wait({ready, self._edge_task}, return_when=asyncio.FIRST_COMPLETED)
        if self._edge_task.done():
            ready.cancel()
            task, self._edge_task = self._edge_task, None
            task.result()  # the edge failed to start (e.g. port in use): raise it here

    async def start_edge_process(self) -> None:
        """`huimin edge` as a child process, as on a Pi; ready when /healthz answers."""
        log_path = self.dir / "edge.log"
        with open(log_path, "ab") as out:  # noqa: ASYNC230 (opening a log is instant)
            self.edge_proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tools.cli", "edge", "--config", str(self.dir / "edge.toml"),
                stdout=out, stderr=out, cwd=ROOT)
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        async with aiohttp.ClientSession() as s, asyncio.timeout(20):
            while True:
                if self.edge_proc.returncode is not None:
                    raise RuntimeError(f"edge exited; see {log_path}")
                try:
                    async with s.get(url) as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)

    async def kill_edge_process(self) -> None:
        if self.edge_proc is not None and self.edge_proc.returncode is None:
            self.edge_proc.kill()
            await self.edge_proc.wait()

    async def wait_online(self, limit_s: float = 20.0) -> None:
        async with asyncio.timeout(limit_s):
            # Polling: simpler than an event per device, and bounded.
            while not await self._online_now():  # noqa: ASYNC110
                await asyncio.sleep(0.05)

    async def edge_api(self, what: str) -> list[dict[str, Any]]:
        """GET /api/<what> (devices, stations, ...) from the edge with the
        technician's token, as a technician's tools do: its list of rows."""
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(headers=headers) as s:
            async with s.get(f"http://127.0.0.1:{self.http_port}/api/{what}") as r:
                rows: list[dict[str, Any]] = (await r.json())[what]
                return rows

    async def _online_now(self) -> bool:
        if self.edge is not None:
            return self._all_online()
        # The edge as its own process: ask its API.
        try:
            devices = await self.edge_api("devices")
            stations = await self.edge_api("stations")
        except (aiohttp.ClientError, KeyError, ValueError):
            return False
        return all(d["online"] for d in devices) and all(st["capacity"] > 0 and st["online"]
                                                          for st in stations)

    def _all_online(self) -> bool:
        """Every device heard (hello), and every dock's slots known to the edge:
        before that a rider's rental would find no bike."""
        edge = self.edge
        assert edge is not None
        if not all(d.online and d.hello_seen for d in edge.registry.devices.values()):
            return False
        for d in self.docks:
            slots = edge.stations.device_slots(d.dev)
            if slots is None or slots.n < 0 or not slots.online:
                return False
        return True

    # -- tear-down -----------------------------------------------------------------------
    async def stop(self) -> None:
        self._stop.set()
        if self._broker_task is not None:
            self._broker_task.cancel()
        if self._firmware is not None:
            await self._firmware.stop([*self.docks, *self.kiosks])
        if self.bench is not None:
            await self.bench.stop()
        if self._edge_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._edge_task
        stuck = await self._stop_edge_process()
        if self.backend is not None and self.city is None:  # a city's backend is the city's
            await self.backend.stop()
        if self.city_broker is not None:
            await self.city_broker.stop()
        for d in self.docks:
            await d.emulator.close()
            if d.line is not None:
                d.line.close()
            if d.radio is not None:
                await d.radio.stop()
        for k in self.kiosks:
            if k.board is not None:
                await k.board.close()
            if k.radio is not None:
                await k.radio.stop()
            for peer in (k.module, k.screen, k.voice):
                if peer is not None:
                    await peer.close()
            for ln in k.lines.values():
                ln.close()
        if self.screens is not None:
            await self.screens.stop()
        if self.broker is not None:
            await self.broker.stop()
        if stuck:
            raise RuntimeError(stuck)

    async def _stop_edge_process(self) -> str:
        if self.edge_proc is None or self.edge_proc.returncode is not None:
            return ""
        self.edge_proc.terminate()
        try:
            async with asyncio.timeout(30):
                await self.edge_proc.wait()
        except TimeoutError:  # a hang at shutdown is a bug: kill, clean up, then say so
            self.edge_proc.kill()
            await self.edge_proc.wait()
            return f"the edge did not exit within 30 s of SIGTERM; see {self.dir / 'edge.log'}"
        return ""

    async def __aenter__(self) -> Town:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is not None:
            self.dump_logs()  # a failure keeps the devices' own account of it
        await self.stop()

    def dump_logs(self, lines: int = 80) -> None:
        """Print the tail of every device's console log and the edge's log: a
        test that fails (even once in many runs) then shows what the devices
        saw, in its captured output."""
        logs = [(d.dev, d.log_path) for d in self.docks]
        logs += [(k.dev, k.log_path) for k in self.kiosks]
        logs.append(("edge process", self.dir / "edge.log"))
        for name, path in logs:
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                print(f"----- {name}: last {len(tail)} lines of {path} -----", file=sys.stderr)
                print("\n".join(tail), file=sys.stderr)

    # -- people --------------------------------------------------------------------------
    def dock(self, dev: str) -> SimDock:
        return next(d for d in self.docks if d.dev == dev)

    def _people(self) -> tuple[Riders, Villagers]:
        assert self._riders is not None and self._villagers is not None, "town not started"
        return self._riders, self._villagers

    async def rent(self, d: SimDock, slot: int | None = None) -> str | None:
        """A rider rents at the dock through the city's backend (people.py)."""
        return await self._people()[0].rent(d, slot)

    async def technician_unlock(self, d: SimDock, slot: int) -> str | None:
        return await self._people()[0].technician_unlock(d, slot)

    def give_back(self, d: SimDock, bike: str, slot: int | None = None) -> int | None:
        return self._people()[0].give_back(d, bike, slot)

    async def riders(self, period: float = 1.5) -> None:
        await self._people()[0].ride(period)

    async def villager(self, card: Card, records: list[dict[str, Any]] | None) -> str:
        return await self._people()[1].register(card, records)

    async def villagers(self, period: float = 4.0) -> None:
        await self._people()[1].swipe(period)
