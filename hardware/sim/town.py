"""A simulated town on one machine: a private Mosquitto, the edge service, and
bike docks whose real firmware runs under the MicroPython unix port, each with
its emulated hardware; some docks on serial lines, some on MQTT. Used by
`huimin sim` and by the tests (which reach in and drive the emulators)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from wire import idcard

from edge import config as edge_config
from edge.adapters.api_tokens import ApiTokens
from edge.adapters.device_keys import dump_devices, write_private
from edge.config import EdgeConfig
from edge.runtime import Edge
from hardware.dock_emulator import DockEmulator
from hardware.idcard_emulator import Card, IdCardModule, fictional_card
from hardware.kiosk_emulator import HmiScreen, VoiceModule
from hardware.serial_line import SerialLine
from hardware.sim.backend import DevBackend
from tools.broker import Broker, TlsFiles, free_port, mosquitto_path, password_hash
from tools.ca import county_tls
from tools.firmware import build, install, micropython_path

log = logging.getLogger("sim")

# Stations around Anji's town centre (fictional names, plausible coordinates).
PLACES = [("递铺街道", "Dipu"), ("昌硕广场", "Changshuo Square"),
          ("天荒坪路", "Tianhuangping Rd"), ("竹博园", "Bamboo Expo Park"),
          ("汽车站", "Bus Station"), ("人民医院", "People's Hospital"),
          ("灵峰寺", "Lingfeng Temple"), ("浒溪公园", "Huxi Park"), ("县政府", "County Hall"),
          ("体育中心", "Sports Centre"), ("凤凰山", "Fenghuang Hill"), ("万达广场", "Wanda Plaza")]
CENTRE = (30.638, 119.681)
ROOT = Path(__file__).resolve().parents[2]
# Each device's heap: the smallest (in 4K steps) at which its soak keeps 10%
# free at its lowest (tests/firmware/test_heap_soak.py, test_kiosk_heap.py);
# the figures are in firmware/apps/dock/README.md and docs/kiosk.md.
HEAP = "76K"  # a dock on a serial line
MQTT_HEAP = "84K"  # a dock on MQTT: the client, TLS and its buffers
KIOSK_HEAP = "76K"
KIOSK_MQTT_HEAP = "84K"
RIDER_PATIENCE_S = 20.0  # a rider waits this long at the dock for the unlock


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


class Town:
    def __init__(self, workdir: Path, docks: int = 6, slots: int = 12, mqtt_share: float = 0.5,
                 http_port: int = 0, heartbeat_s: int = 10, seed: int | None = None,
                 heap: str | None = None, use_mqtt: bool | None = None, fill: float = 0.6,
                 backend: bool = True, edge_process: bool = False,
                 city_broker: bool = False, kiosks: int = 0,
                 kiosk_heap: str | None = None, baud: int = 0, ota_key: str = "",
                 ota_confirm_s: int = 60, kiosk_link: str = "serial",
                 kiosk_lookups_per_minute: float | None = None,
                 dock_config: dict[str, Any] | None = None,
                 kiosk_key_store: bool = False) -> None:
        self.dir = workdir
        self.kiosk_link = kiosk_link  # "serial" (a cable to the Pi) or "mqtt" (Wi-Fi/4G)
        self.kiosk_lookups_per_minute = kiosk_lookups_per_minute  # None: the edge's default
        self.dock_config = dock_config or {}  # extra settings for every dock's config.json
        # Kiosks keep the region key in the board's key store (hal.lookup_token;
        # an eFuse block, emulated on this port by a file), not in config.json.
        self.kiosk_key_store = kiosk_key_store
        self.ota_key = ota_key  # hex Ed25519 public key provisioned on devices (docs/ota.md)
        self.ota_confirm_s = ota_confirm_s
        self.with_backend = backend
        self.edge_process = edge_process  # run the edge as its own process (kill tests)
        self.backend: DevBackend | None = None
        self.backend_url = ""
        self.secret = "dev-secret-" + "0123456789abcdef"
        self.edge_proc: asyncio.subprocess.Process | None = None
        self.with_city_broker = city_broker
        self.n_kiosks = kiosks
        self.kiosk_heap = kiosk_heap or (KIOSK_MQTT_HEAP if kiosk_link == "mqtt" else KIOSK_HEAP)
        self.baud = baud  # pace the kiosks' serial lines (benchmarks); 0 = instant
        self.kiosks: list[SimKiosk] = []
        self.region_key = bytes(range(1, 33))  # provisioned on kiosks (tools: provision)
        self.city_broker: Broker | None = None  # the city's broker, for the MQTT uplink
        self.n_docks = docks
        self.slots = slots
        self.http_port = http_port
        self.heartbeat_s = heartbeat_s
        self.heap = heap
        self.rng = random.Random(seed)
        self.fill = fill
        self.use_mqtt = mosquitto_path() is not None if use_mqtt is None else use_mqtt
        self.mqtt_share = mqtt_share if self.use_mqtt else 0.0
        self.broker: Broker | None = None
        self.docks: list[SimDock] = []
        self.edge: Edge | None = None
        self.cfg: EdgeConfig | None = None
        self._stop = asyncio.Event()
        self._edge_task: asyncio.Task[None] | None = None
        self._sup: list[asyncio.Task[None]] = []
        self._bike_no = 0
        self.device_secrets: dict[str, dict[str, str]] = {}
        self.token = ""  # a technician's API token for this town's edge
        self.edge_mqtt_password = ""
        self.bridge_password = self.city_backend_password = ""
        self.tls: TlsFiles | None = None

    # -- set-up ------------------------------------------------------------------
    def _new_bike(self) -> str:
        self._bike_no += 1
        return f"0B{self._bike_no:08X}"

    def _edge_toml(self) -> str:
        lines = ["[edge]", 'site = "anji"', f"http_port = {self.http_port}",
                 f'db = "{self.dir / "edge.db"}"',
                 f"heartbeat_timeout_s = {self.heartbeat_s * 3}",
                 *([f"kiosk_lookups_per_minute = {self.kiosk_lookups_per_minute}"]
                   if self.kiosk_lookups_per_minute else []), "",
                 "[system]", 'id = "anji-public-bikes"', 'name_zh = "安吉公共自行车"',
                 'name_en = "Anji Public Bikes"', ""]
        lines.insert(5, f'device_keys = "{self.dir / "device-keys.toml"}"')
        lines.insert(6, f'api_tokens = "{self.dir / "api-tokens.toml"}"')
        if self.broker is not None:
            lines += ["[mqtt]", f'url = "{self.broker.url}"', 'username = "huimin-edge"',
                      f'password = "{self.edge_mqtt_password}"', ""]
        if self.city_broker is not None:
            lines += ["[[uplinks]]", 'name = "city-mqtt"', 'kind = "mqtt"',
                      f'url = "{self.city_broker.url}"', "timeout_s = 5",
                      'username = "bridge-anji"', f'password = "{self.bridge_password}"',
                      f'secret = "{self.secret}"', ""]
        if self.backend_url:
            lines += ["[[uplinks]]", 'name = "city"', 'kind = "webhook"',
                      f'url = "{self.backend_url}/webhook"', f'secret = "{self.secret}"',
                      "timeout_s = 5", ""]
        for d in self.docks:
            if d.line is not None:
                lines += ["[[serial]]", f'port = "{d.line.paths[1]}"', f'devices = ["{d.dev}"]',
                          ""]
        for k in self.kiosks:
            if "edge" in k.lines:
                lines += ["[[serial]]", f'port = "{k.lines["edge"].paths[1]}"',
                          f'devices = ["{k.dev}"]', ""]
            lines += ["[[kiosks]]", f'id = "{k.dev}"', ""]
        for i, d in enumerate(self.docks):
            zh, en = PLACES[i % len(PLACES)]
            if i >= len(PLACES):
                zh, en = f"{zh}{i // len(PLACES) + 1}号", f"{en} {i // len(PLACES) + 1}"
            lat = CENTRE[0] + self.rng.uniform(-0.02, 0.02)
            lon = CENTRE[1] + self.rng.uniform(-0.02, 0.02)
            lines += ["[[stations]]", f'id = "{d.station}"', f'name_zh = "{zh}"',
                      f'name_en = "{en}"', f"lat = {lat:.6f}", f"lon = {lon:.6f}",
                      f'devices = ["{d.dev}"]', ""]
        return "\n".join(lines)

    async def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in ("edge.db", "edge.db-wal", "edge.db-shm", "broker", "devices", "backend.db",
                      "backend.db-wal", "backend.db-shm", "city-broker", "ca", "device-keys.toml",
                      "device-keys.toml.counter", "api-tokens.toml", "technician-token"):
            p = self.dir / stale
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        self.firmware = build("unix")
        if self.use_mqtt:
            # The county's setup, as docs/deploy.md makes it: a CA, the broker's
            # certificate, accounts for the edge and each MQTT device.
            self.tls = county_tls(self.dir / "ca", ["127.0.0.1", "localhost"])
            self.broker = Broker(self.dir / "broker", tls=self.tls)
            self.edge_mqtt_password = self.broker.account("huimin-edge", "edge")
        n_mqtt = round(self.n_docks * self.mqtt_share)
        for i in range(self.n_docks):
            dev = f"dock-{i + 1:03d}"
            link = "mqtt" if i >= self.n_docks - n_mqtt else "serial"
            bikes = {s: self._new_bike() for s in range(self.slots)
                     if self.rng.random() < self.fill}
            emu = DockEmulator(dev, self.slots, bikes)
            d = SimDock(dev, f"anji-{i + 1:03d}", link, self.slots, emu,
                        self.dir / "devices" / dev)
            if link == "serial":
                d.line = SerialLine()
                d.line.open()
            self._provision(d)
            self.docks.append(d)
        for i in range(self.n_kiosks):
            link = "mqtt" if self.kiosk_link == "mqtt" and self.broker is not None else "serial"
            k = SimKiosk(f"kiosk-{i + 1:03d}", self.dir / "devices" / f"kiosk-{i + 1:03d}", link)
            for name in ("edge", "sam", "display", "voice") if link == "serial" else (
                    "sam", "display", "voice"):
                k.lines[name] = SerialLine(record=name != "sam", baud=self.baud)
                k.lines[name].open()
            k.module = IdCardModule(k.lines["sam"].paths[1])
            k.screen = HmiScreen(k.lines["display"].paths[1])
            k.voice = VoiceModule(k.lines["voice"].paths[1])
            for peer in (k.module, k.screen, k.voice):
                await peer.start()
            self._provision(k)
            self.kiosks.append(k)
        write_private(self.dir / "device-keys.toml", dump_devices(self.device_secrets))
        # The simulator's technician (huimin token add sim --out ...): what the
        # technician tools send the edge's API.
        self.token = ApiTokens(self.dir / "api-tokens.toml").add("sim")
        write_private(self.dir / "technician-token", self.token + "\n")
        if self.broker is not None:
            await self.broker.start()
        if self.http_port == 0:
            self.http_port = free_port()
        if self.with_city_broker:
            self.city_broker = Broker(self.dir / "city-broker")
            self.bridge_password = self.city_broker.account("bridge-anji", "bridge")
            self.city_backend_password = self.city_broker.account("city-backend", "backend")
            await self.city_broker.start()
        if self.with_backend:
            # The city gives each site its own key (one shared key would let any
            # edge act for any other).
            self.backend = DevBackend(self.dir / "backend.db", {"anji": self.secret})
            self.backend_url = await self.backend.start()
        toml = self._edge_toml()
        write_private(self.dir / "edge.toml", toml)  # it holds the edge's broker password
        self.cfg = edge_config.load(self.dir / "edge.toml")
        if self.edge_process:
            await self.start_edge_process()
            for d in self.docks:
                await self._start_dock(d)
            return
        self.edge = Edge(self.cfg)
        self._edge_task = asyncio.create_task(self.edge.run(self._stop), name="edge")
        ready = asyncio.create_task(self.edge.ready.wait(), name="edge-ready")
        await asyncio.wait({ready, self._edge_task}, return_when=asyncio.FIRST_COMPLETED)
        if self._edge_task.done():
            ready.cancel()
            task, self._edge_task = self._edge_task, None
            task.result()  # the edge failed to start (e.g. port in use): raise it here
        for d in self.docks:
            await self._start_dock(d)
        for k in self.kiosks:
            await self._start_kiosk(k)

    def _provision(self, d: SimDock | SimKiosk) -> None:
        """What `huimin provision` makes for a device: its command key and, on
        MQTT, its broker account (the edge keeps the key, the broker the hash)."""
        d.secrets["command_key"] = secrets.token_hex(32)
        entry = {"command_key": d.secrets["command_key"]}
        if d.link == "mqtt" and self.broker is not None:
            d.secrets["mqtt_password"] = pw = secrets.token_urlsafe(18)
            entry["mqtt_password"] = password_hash(pw)
            self.broker.add_hashed(d.dev, entry["mqtt_password"])
        self.device_secrets[d.dev] = entry

    def _device_mqtt(self, d: SimDock | SimKiosk) -> dict[str, Any]:
        assert self.broker is not None and self.broker.tls_port is not None
        shutil.copyfile(self.dir / "ca" / "ca.der", d.flash / "ca.der")
        return {"host": "127.0.0.1", "port": self.broker.tls_port, "keepalive": 15,
                "user": d.dev, "password": d.secrets["mqtt_password"], "ca": "ca.der"}

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

    async def _start_dock(self, d: SimDock) -> None:
        bus = (d.emulator.port and f"127.0.0.1:{d.emulator.port}") or await d.emulator.start()
        d.flash.mkdir(parents=True, exist_ok=True)
        d.config = {"dev": d.dev, "site": "anji", "kind": "dock", "slots": d.slots,
                    "link": d.link, "bus": bus, "heartbeat_s": self.heartbeat_s,
                    "uart": d.line.paths[0] if d.line else "", "ota_key": self.ota_key,
                    "ota_confirm_s": self.ota_confirm_s,
                    "cmd_key": d.secrets["command_key"], **self.dock_config}
        if d.link == "mqtt" and self.broker is not None:
            d.config["mqtt"] = self._device_mqtt(d)
        write_private(d.flash / "config.json", json.dumps(d.config))
        d.log_path = d.flash / "console.log"
        # The firmware sits on the device's filesystem, as after `flash`; short
        # relative paths also keep the interpreter's interned import paths small.
        install(self.firmware, d.flash)
        self._sup.append(asyncio.create_task(self._supervise(d), name=f"fw:{d.dev}"))

    async def _start_kiosk(self, k: SimKiosk) -> None:
        k.flash.mkdir(parents=True, exist_ok=True)
        cfg = {"dev": k.dev, "site": "anji", "kind": "kiosk", "link": k.link,
               "uart": k.lines["edge"].paths[0] if "edge" in k.lines else "",
               "sam_uart": k.lines["sam"].paths[0],
               "display_uart": k.lines["display"].paths[0],
               "voice_uart": k.lines["voice"].paths[0],
               "region_key": "efuse" if self.kiosk_key_store else self.region_key.hex(),
               "heartbeat_s": self.heartbeat_s, "show_s": 30, "ota_key": self.ota_key,
               "ota_confirm_s": self.ota_confirm_s, "cmd_key": k.secrets["command_key"]}
        if k.link == "mqtt" and self.broker is not None:
            cfg["mqtt"] = self._device_mqtt(k)
        write_private(k.flash / "config.json", json.dumps(cfg))
        if self.kiosk_key_store:
            write_private(k.flash / "efuse_key", self.region_key.hex())
        install(self.firmware, k.flash)
        k.log_path = k.flash / "console.log"
        self._sup.append(asyncio.create_task(self._supervise(k), name=f"fw:{k.dev}"))

    async def villager(self, card: Card, records: list[dict[str, Any]] | None) -> str:
        """Register a fictional villager's fund records at the backend (by token)."""
        tok: str = idcard.token(self.region_key, card.id_number)
        if records and self.backend is not None:
            async with aiohttp.ClientSession() as s, s.post(
                    f"{self.backend_url}/api/funds", json={"token": tok, "records": records},
                    headers={"Authorization": f"Bearer {self.backend.operator_token}"}) as r:
                r.raise_for_status()
        return tok

    async def _supervise(self, d: SimDock | SimKiosk) -> None:
        """Run the firmware; restart it when it exits (its watchdog/reset on unix)."""
        while not self._stop.is_set():
            with open(d.log_path, "ab") as out:  # noqa: ASYNC230 (opening a log is instant)
                d.proc = await asyncio.create_subprocess_exec(
                    micropython_path(), "-X",
                    f"heapsize={self._heap(d)}",
                    "main.py", cwd=d.flash, stdout=out, stderr=out)
                rc = await d.proc.wait()
            if self._stop.is_set():
                return
            d.restarts += 1
            log.warning("%s firmware exited (%s); restarting", d.dev, rc)
            await asyncio.sleep(0.5)

    def _heap(self, d: SimDock | SimKiosk) -> str:
        if isinstance(d, SimKiosk):
            return self.kiosk_heap
        return self.heap or (MQTT_HEAP if d.link == "mqtt" else HEAP)

    async def wait_online(self, limit_s: float = 20.0) -> None:
        assert self.edge is not None
        async with asyncio.timeout(limit_s):
            # Polling the registry: simpler than an event per device, and bounded.
            while not self._all_online():  # noqa: ASYNC110
                await asyncio.sleep(0.05)

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

    async def stop(self) -> None:
        self._stop.set()
        procs = [d.proc for d in self.docks] + [k.proc for k in self.kiosks]
        for p in procs:
            if p is not None and p.returncode is None:
                p.terminate()
        for t in self._sup:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(5):
                    await t
        if self._edge_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._edge_task
        stuck = ""
        if self.edge_proc is not None and self.edge_proc.returncode is None:
            self.edge_proc.terminate()
            try:
                async with asyncio.timeout(30):
                    await self.edge_proc.wait()
            except TimeoutError:  # a hang at shutdown is a bug: kill, clean up, then say so
                self.edge_proc.kill()
                await self.edge_proc.wait()
                stuck = f"the edge did not exit within 30 s of SIGTERM; see {self.dir / 'edge.log'}"
        if self.backend is not None:
            await self.backend.stop()
        if self.city_broker is not None:
            await self.city_broker.stop()
        for d in self.docks:
            await d.emulator.close()
            if d.line is not None:
                d.line.close()
        for k in self.kiosks:
            for peer in (k.module, k.screen, k.voice):
                if peer is not None:
                    await peer.close()
            for ln in k.lines.values():
                ln.close()
        if self.broker is not None:
            await self.broker.stop()
        if stuck:
            raise RuntimeError(stuck)

    async def __aenter__(self) -> Town:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- riders ------------------------------------------------------------------
    def dock(self, dev: str) -> SimDock:
        return next(d for d in self.docks if d.dev == dev)

    async def rent(self, d: SimDock, slot: int | None = None) -> str | None:
        """A rider scans the dock's code: the city's backend issues a rental, the
        edge takes it (edge/app/rentals.py) and unlocks the slot, the rider
        takes the bike; returns its id, or None if the rental failed. A town
        without a backend has no riders' path: a technician unlocks directly."""
        if slot is None:
            choices = [i for i, s in enumerate(d.emulator.slots) if s.present and s.latched]
            if not choices:
                return None
            slot = self.rng.choice(choices)
        if self.backend is None:
            return await self.technician_unlock(d, slot)
        for _ in range(3):
            err = await self._rent_through_backend(d, slot)
            if err is None:
                return d.emulator.take_bike(slot)
            if err not in ("no_bike", "station_offline"):
                return None
            # The dock's slot report follows its last event by a moment: a rider
            # who sees the bike there scans again.
            await asyncio.sleep(0.3)
        return None

    async def _rent_through_backend(self, d: SimDock, slot: int) -> str | None:
        """None once the slot is unlocked for the rider, else why not."""
        assert self.backend is not None
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.backend_url}/api/rentals", json={
                    "site": "anji", "station": d.station, "slot": slot, "rider": "sim"},
                    headers={"Authorization": f"Bearer {self.backend.operator_token}"}) as r:
                if r.status != 201:
                    log.warning("rider at %s: the backend refused the rental (HTTP %d)",
                                d.station, r.status)
                    return "refused"
                rid = (await r.json())["rental_id"]
            try:
                async with asyncio.timeout(RIDER_PATIENCE_S):
                    while slot not in d.emulator.takeable():
                        async with http.get(f"{self.backend_url}/api/rentals/{rid}") as r:
                            got = await r.json()
                        if got["state"] == "failed":
                            err = str((got.get("result") or {}).get("err"))
                            log.info("rider at %s slot %d: rental failed (%s)", d.station,
                                     slot, err)
                            return err
                        await asyncio.sleep(0.02)
            except TimeoutError:
                log.info("rider at %s slot %d: gave up waiting for the unlock", d.station, slot)
                return "timeout"
        return None

    async def technician_unlock(self, d: SimDock, slot: int) -> str | None:
        assert self.edge is not None
        res = await self.edge.command(d.dev, "unlock", slot=slot)
        if not res.ok:
            log.info("technician at %s slot %d: unlock refused (%s)", d.station, slot, res.err)
            return None
        await asyncio.sleep(0.05)
        return d.emulator.take_bike(slot)

    def give_back(self, d: SimDock, bike: str, slot: int | None = None) -> int | None:
        if slot is None:
            free = [i for i, s in enumerate(d.emulator.slots) if not s.present and not s.latched]
            if not free:
                return None
            slot = self.rng.choice(free)
        d.emulator.insert_bike(slot, bike)
        return slot

    async def villagers(self, period: float = 4.0) -> None:
        """Scripted villagers at each kiosk: most have payments on record, some do
        not, now and then a card is lifted too early. Fictional people only."""
        rng = self.rng
        programmes = ["耕地地力保护补贴", "良种补贴", "农资综合补贴", "城乡居民基础养老金",
                      "低保金"]
        people = []
        for _ in range(8):
            card = fictional_card(rng)
            recs = [{"programme": rng.choice(programmes), "amount_fen": rng.randint(50, 3000) * 100,
                     "paid": f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}",
                     "status": "已发放"} for _ in range(rng.randint(1, 4))]
            await self.villager(card, recs if rng.random() < 0.8 else None)
            people.append(card)
        while True:
            await asyncio.sleep(rng.uniform(period / 2, period))
            for k in self.kiosks:
                if k.module is None or k.screen is None:
                    continue
                k.module.fault = "pull_mid_read" if rng.random() < 0.1 else None
                k.module.place(rng.choice(people))
                await asyncio.sleep(rng.uniform(3, 6))
                log.info("%s shows: %s | %s", k.dev, k.screen.texts.get(0x1000, ""),
                         k.screen.texts.get(0x1900, ""))
                k.module.place(None)

    async def riders(self, period: float = 1.5) -> None:
        """Random riders forever: rent at one station, return at another."""
        riding: list[str] = []
        while True:
            await asyncio.sleep(self.rng.uniform(0.3, period))
            d = self.rng.choice(self.docks)
            try:
                if riding and self.rng.random() < 0.5:
                    bike = riding.pop(self.rng.randrange(len(riding)))
                    if self.give_back(d, bike) is None:
                        riding.append(bike)
                else:
                    bike_or_none = await self.rent(d)
                    if bike_or_none:
                        riding.append(bike_or_none)
            except Exception as exc:  # a rider's bad luck must not end the simulation
                log.info("rider at %s: %s", d.station, exc)
