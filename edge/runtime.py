"""The edge's runtime: the one place that builds every part, plugs the adapters
(store, transports, HTTP, the bridge's uplinks) into the core and the
application services, and owns the TaskGroup they run in. It is the only
module that imports both the edge and the bridge (docs/architecture.md)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from cloud_bridge.backend_format import BackendFormat
from cloud_bridge.bridge import Bridge
from edge.adapters.api_tokens import ApiTokens
from edge.adapters.device_keys import DeviceKeys
from edge.adapters.http.server import HttpServer
from edge.adapters.store import SqliteStore
from edge.adapters.systemd import Systemd
from edge.adapters.transports.mqtt import MqttTransport
from edge.adapters.transports.serial import SerialTransport
from edge.app.funds import Funds
from edge.app.housekeeping import Housekeeping
from edge.app.ingest_loop import IngestLoop
from edge.app.links import DeviceLinks
from edge.app.ota import Ota
from edge.app.provisioning import Provisioning
from edge.app.rentals import RentalDesk
from edge.app.watchdog import feed as feed_watchdog
from edge.config import EdgeConfig
from edge.core.ingest import Ingest
from edge.core.liveness import Liveness
from edge.core.messages import Result
from edge.core.metrics import Metrics
from edge.core.ratelog import RateLimitedLog
from edge.core.registry import Registry
from edge.core.rentals import RentalMachine
from edge.core.stations import Stations

log = logging.getLogger("edge")
MAX_TASKS = 1000  # rentals, lookups and rollouts in flight at once


def collect_garbage_less_often() -> None:
    """For the edge's own process (`huimin edge`): the cycle collector's
    first generation every 20,000 allocations, not 700. An event's path
    allocates a few dozen short-lived objects, none in cycles that matter, so
    the default ran a collection every few events: 18,900 against 12,900
    events/s in bench/ingest.py (20,000 events, 500 docks), for at most a few
    MB more of garbage waiting."""
    gc.set_threshold(20_000, 10, 10)


class Edge:
    def __init__(self, cfg: EdgeConfig, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        # The wall clock events are received (and devices' clocks kept) by;
        # the simulator's faults move it (a clock jump on the edge).
        self.clock = clock
        self.started = time.time()
        self.metrics = Metrics()
        self.registry = Registry(cfg.device_station(), cfg.heartbeat_timeout_s, cfg.kiosks)
        self.stations = Stations(cfg.stations, self.started)
        self.store = SqliteStore(cfg.db, tuple(u.name for u in cfg.uplinks), cfg.db_max_mb)
        self.keys = DeviceKeys(cfg.device_keys)
        self.tokens = ApiTokens(cfg.api_tokens)
        self.links = DeviceLinks(self.metrics)
        self._requests: set[asyncio.Task[Any]] = set()  # rentals, lookups, rollouts
        self._warn = RateLimitedLog(log)
        backend = BackendFormat(cfg.site) if cfg.uplinks else None
        machine = RentalMachine(self.stations, cfg.rental_timeout_s)
        self.rentals = RentalDesk(machine, self.store, self.links, self.stations, self.metrics,
                                  backend.rental if backend else None)
        self.bridge = Bridge(cfg, self.store, self.stations, self.metrics, self.start_rental)
        self.funds = Funds(self.store, self.bridge.funds_source(), self.registry, self.links,
                           self.metrics, self.spawn,
                           lookups_per_minute=cfg.kiosk_lookups_per_minute,
                           retention_days=cfg.funds_retention_days,
                           region_key_id=cfg.region_key_id)
        self.ota = Ota(self.links, self.registry, self.spawn)
        self.devices = Provisioning(self.keys, self.store, self.registry, self.stations,
                                    cfg.mqtt.username if cfg.mqtt else None)
        self.ingest = IngestLoop(
            Ingest(self.registry, self.stations, machine, self.metrics), self.store, self.links,
            self.metrics, backend, on_counter_floor=self.keys.device_floor,
            on_hello=self.ota.on_hello, on_lookup=self.funds.on_lookup,
            rentals=self.rentals)
        self.ingest.on_station_changed = self._station_changed
        self.housekeeping = Housekeeping(
            self.registry, self.stations, self.links, self.store, self.metrics,
            self.ingest.station_changed, heartbeat_timeout_s=cfg.heartbeat_timeout_s,
            events_retention_days=cfg.events_retention_days,
            dead_letter_max=cfg.dead_letter_max,
            station_names={s.id: s.name_zh for s in cfg.stations},
            station_places={s.id: (s.lat, s.lon) for s in cfg.stations},
            kiosk_places={k: (lat, lon) for k, lat, lon in cfg.kiosk_places})
        inbound = self.ingest.inbound
        self.transports: list[SerialTransport | MqttTransport] = [
            SerialTransport(p, inbound, self.metrics, self.keys, clock) for p in cfg.serial]
        if cfg.mqtt is not None:
            self.transports.append(MqttTransport(cfg.mqtt, cfg.site, inbound, self.metrics,
                                                 self.keys, clock))
        self.ready = asyncio.Event()
        self.http_port = cfg.http_port
        self.systemd = Systemd()

    def _station_changed(self) -> None:
        self.rentals.slots_changed()
        self.bridge.station_changed()

    # -- lifecycle -----------------------------------------------------------
    async def _restore(self) -> None:
        """What the last run knew: devices provisioned since, slot reports,
        rentals under way."""
        await self.store.open()
        await self.devices.restore()
        for s in await self.store.states():
            self.stations.restore(s.device, s.boot, s.n, s.slots, s.reported)
        await self.rentals.resume()
        await self.funds.start()
        source = self.bridge.funds_source()
        if self.cfg.kiosks:
            if source is None:
                log.warning("no uplink answers fund lookups (a webhook does): kiosks are "
                            "answered from the edge's cache only")
            else:
                log.info("fund lookups: through uplink %s", source.name)

    async def run(self, stop: asyncio.Event) -> None:
        await self._restore()
        http = HttpServer(self)
        await http.start()
        self.http_port = http.port
        try:
            async with asyncio.TaskGroup() as tg:
                hk = self.housekeeping
                tasks = [tg.create_task(self.store.run(), name="store-writer"),
                         tg.create_task(self.ingest.dispatch(), name="dispatch"),
                         tg.create_task(self.links.run(), name="device-sender"),
                         tg.create_task(self.rentals.deadlines(), name="rental-deadlines"),
                         tg.create_task(hk.offline_check(), name="offline-check"),
                         tg.create_task(hk.retention_loop(), name="retention"),
                         tg.create_task(hk.kiosk_feed(), name="kiosk-feed"),
                         # always: a kiosk may be provisioned without being listed, and
                         # cached fund answers must be forgotten on time either way
                         tg.create_task(self.funds.refresh(), name="funds-refresh")]
                tasks += [tg.create_task(t.run(), name=t.name) for t in self.transports]
                tasks += self.bridge.tasks(tg)
                sd = self.systemd
                if sd.watchdog_s is not None:
                    tasks.append(tg.create_task(
                        feed_watchdog(self.liveness(sd.watchdog_s), sd.watchdog_s, sd.notify,
                                      self.status_line), name="watchdog"))
                self.ready.set()
                log.info("edge %s up: %d stations, %d devices, %d transports, http :%d",
                         self.cfg.site, len(self.cfg.stations), len(self.registry.devices),
                         len(self.transports), self.http_port)
                sd.notify(f"READY=1\nSTATUS={self.status_line()}")
                await stop.wait()
                sd.notify("STOPPING=1\nSTATUS=stopping: acking stored events, closing links")
                await self.links.drained(2.0)  # stored events acked before the links go
                for t in [*tasks, *self._requests]:
                    t.cancel()
                await _shutdown_watch([*tasks, *self._requests])
        finally:
            await self.bridge.close()
            await http.stop()
            await self.store.close()
            self.systemd.close()
            log.info("edge %s stopped", self.cfg.site)

    def liveness(self, limit_s: float) -> Liveness:
        """The pipeline's stages, as the watchdog watches them. Uplinks are not
        among them: a city that cannot be reached is an outage the outbox rides
        out, not a hang a restart would mend."""
        live = Liveness(limit_s)
        ingest, store, links = self.ingest, self.store, self.links
        live.add("dispatch", ingest.inbound.qsize, lambda: ingest.handled)
        live.add("device-sender", links.waiting, lambda: links.sent)
        live.add("store-writer", store.waiting, lambda: store.finished)
        for t in self.transports:
            if isinstance(t, MqttTransport):
                # A worker that hangs (not one that ends: that one is started again).
                live.add("mqtt-wire-worker", t.worker_waiting, t.worker_answered)
        return live

    def status_line(self) -> str:
        """One line for `systemctl status huimin-edge`."""
        online = sum(d.online for d in self.registry.devices.values())
        waiting = sum(n for n, _ in self.bridge.backlog.values())
        return (f"{online}/{len(self.registry.devices)} devices online, "
                f"{waiting} items waiting for the city")

    # -- what adapters ask of the edge ---------------------------------------------
    def start_rental(self, req: Any) -> None:
        """A rental from the backend, run on its own and cancelled at shutdown. A
        backend that sends more than MAX_TASKS at once is told to come back
        (its outbox retries), not given a task each."""
        if len(self._requests) >= MAX_TASKS:
            self.metrics.inc("rentals.rejected", "busy")
            rid = req.get("rental_id") if isinstance(req, dict) else None
            self._warn.warning("busy", "%d requests in flight: rental %s refused for now",
                               len(self._requests), str(rid)[:40])
            return
        self.spawn(self.rentals.rent(req), "rental")

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        t = asyncio.get_running_loop().create_task(coro, name=name)
        self._requests.add(t)
        t.add_done_callback(self._requests.discard)

    def backlog(self) -> dict[str, tuple[int, float]]:
        return self.bridge.backlog

    def inbound_backlog(self) -> int:
        return self.ingest.inbound.qsize()

    def alarms(self) -> dict[str, float]:
        """What a technician must act on: the edge's disk, docks' flash."""
        out = dict(self.ingest.alarms)
        for d in self.registry.devices.values():
            if d.flash_full():
                out[f"flash_full:{d.id}"] = d.last_seen
        return out

    async def command(self, dev: str, op: str, wait_s: float = 5.0, **args: Any) -> Result:
        return await self.links.command(dev, op, wait_s, **args)

    async def retention(self) -> None:
        await self.housekeeping.retention()


async def _shutdown_watch(tasks: list[asyncio.Task[Any]], grace_s: float = 5.0) -> None:
    """A task that outlives its cancel would hold the TaskGroup, and the edge would
    never exit on SIGTERM: name it in the log, with where it is, and cancel it
    again (a library may have turned the first cancel into its own error)."""
    while True:
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        if not pending:
            return
        for t in pending:
            where = "".join(f"{fr.f_code.co_filename}:{fr.f_lineno} " for fr in t.get_stack())
            log.error("shutdown: task %s still running %.0f s after cancel (%s); cancelling again",
                      t.get_name(), grace_s, where.strip() or "?")
            t.cancel()
