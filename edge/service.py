"""The edge service: owns the transports, the registry, the journal, the live
station state and the HTTP server, each a named task in one TaskGroup, and
routes every inbound message to the part that handles it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Coroutine
from dataclasses import asdict
from typing import Any

from wire import kiosk_messages as _kiosk_messages  # noqa: F401  (registers the kiosk types)
from wire import message, names

from cloud_bridge.bridge import Bridge
from edge.api_tokens import ApiTokens
from edge.config import EdgeConfig
from edge.device_keys import DeviceKeys
from edge.errors import Rejected
from edge.funds import Funds
from edge.journal import EventRecord, Journal, OutboxRecord, StateRecord
from edge.metrics import Metrics
from edge.model import Inbound, Reply
from edge.ota import Ota
from edge.ratelog import RateLimitedLog
from edge.registry import Registry
from edge.rentals import Rentals
from edge.stations import Stations
from edge.transports.mqtt import MqttTransport
from edge.transports.serial import SerialTransport

log = logging.getLogger("edge")


class EdgeService:
    def __init__(self, cfg: EdgeConfig) -> None:
        self.cfg = cfg
        self.started = time.time()
        self.metrics = Metrics()
        self.registry = Registry(cfg.device_station(), cfg.heartbeat_timeout_s, cfg.kiosks)
        self.stations = Stations(cfg.stations, self.started)
        self.journal = Journal(cfg.db, tuple(u.name for u in cfg.uplinks))
        self.inbound: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=10_000)
        self._acks: asyncio.Queue[tuple[asyncio.Future[bool], Inbound]] = asyncio.Queue()
        self._warn = RateLimitedLog(log)  # bad input: a few lines a minute per reason
        self.keys = DeviceKeys(cfg.device_keys)
        self.tokens = ApiTokens(cfg.api_tokens)
        self.transports: list[SerialTransport | MqttTransport] = [
            SerialTransport(p, self.inbound, self.metrics, self.keys) for p in cfg.serial]
        if cfg.mqtt is not None:
            self.transports.append(MqttTransport(cfg.mqtt, cfg.site, self.inbound, self.metrics,
                                                 self.keys))
        self._routes: dict[str, Reply] = {}
        self._cmd_ids = itertools.count(int(time.time()) % 1_000_000 * 1000)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ready = asyncio.Event()
        self.http_port = cfg.http_port
        self.listeners: list[Any] = []  # callables(kind, payload), e.g. live pages
        self.rentals = Rentals(self)
        self.bridge = Bridge(self)
        self._rental_tasks: set[asyncio.Task[Any]] = set()
        self.funds = Funds(self)
        self.ota = Ota(self)

    # -- lifecycle -----------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        from edge.http import HttpServer

        await self.journal.open()
        for dev, station, kind in await self.journal.provisioned_all():
            if station in self.stations.by_id:
                self.registry.add(dev, station, kind)
                self.stations.add_device(dev, station)
        for s in await self.journal.states():
            self.stations.restore(s.device, s.boot, s.n, s.slots, s.reported)
        await self.funds.start()
        http = HttpServer(self)
        await http.start()
        self.http_port = http.port
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self.journal.run(), name="journal-writer"),
                         tg.create_task(self._dispatch(), name="dispatch"),
                         tg.create_task(self._acker(), name="acker"),
                         tg.create_task(self._offline_check(), name="offline-check"),
                         tg.create_task(self._retention(), name="retention"),
                         tg.create_task(self._kiosk_feed(), name="kiosk-feed")]
                if self.cfg.kiosks:
                    tasks.append(tg.create_task(self.funds.refresh(), name="funds-refresh"))
                tasks += [tg.create_task(t.run(), name=t.name) for t in self.transports]
                tasks += self.bridge.tasks(tg)
                self.ready.set()
                log.info("edge %s up: %d stations, %d devices, %d transports, http :%d",
                         self.cfg.site, len(self.cfg.stations), len(self.registry.devices),
                         len(self.transports), self.http_port)
                await stop.wait()
                # Let stored events be acked before the transports go.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        await self._acks.join()
                for t in [*tasks, *self._rental_tasks]:
                    t.cancel()
                self.rentals.cancel_all()
                await _shutdown_watch([*tasks, *self._rental_tasks])
        finally:
            await self.bridge.close()
            await http.stop()
            await self.journal.close()
            log.info("edge %s stopped", self.cfg.site)

    # -- inbound -----------------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            item = await self.inbound.get()
            try:
                self.handle(item)
            except Rejected as exc:
                self.metrics.inc("rx.rejected", exc.reason)
                self._warn.warning(exc.reason, "rejected %s from %s via %s: %s",
                                   item.msg.get("t"), item.device[:64], item.transport, exc)
            except Exception:  # a bug here must not stop the edge
                self.metrics.inc("rx.error")
                log.exception("error handling %s from %s", item.msg.get("t"), item.device)

    def handle(self, item: Inbound) -> None:
        msg = item.msg
        dev = self.registry.get(item.device)
        if dev is None:
            raise Rejected("unregistered", f"device {item.device!r} is not in the configuration")
        if msg.get("dev", item.device) != item.device:
            raise Rejected("device_mismatch", f"message says {msg.get('dev')!r}")
        t = msg["t"]
        if dev.transport and item.transport != dev.transport and t != names.HELLO:
            # A device's route moves only with its birth on the new link: one
            # stray message must not divert its commands (docs/security.md).
            raise Rejected("wrong_transport",
                           f"{t} via {item.transport}; the device is on {dev.transport}")
        self.metrics.inc("rx", t)
        if t == names.STATUS:
            if msg["online"]:
                return
            if msg.get("boot", dev.boot) < dev.boot:
                self.metrics.inc("rx.stale_will")
                return  # a will from an older connection, overtaken by a new birth
            dev.online = False
            self.stations.set_online(dev.id, False, item.received)
            self._station_changed(dev.station)
            log.info("device %s offline (last will)", dev.id)
            return
        came = self.registry.seen(dev, item.transport, item.received)
        self._routes[dev.id] = item.reply
        if came:
            log.info("device %s online via %s", dev.id, item.transport)
            self.stations.set_online(dev.id, True, item.received)
            self._station_changed(dev.station)
        if t == names.HELLO:
            dev.hello_seen = True
            dev.kind, dev.fw, dev.slots = msg["kind"], msg["fw"], msg["slots"]
            dev.boot, dev.epoch = msg["boot"], msg["epoch"]
            dev.ota = msg.get("ota") or dev.ota
            if "ctr" in msg:
                self.keys.device_floor(dev.id, msg["ctr"])
            log.info("device %s hello: %s fw %s, %d slots, boot %d%s", dev.id, dev.kind, dev.fw,
                     dev.slots, dev.boot, f", last update: {msg['ota']}" if msg.get("ota") else "")
            self.ota.on_hello(dev.id, msg)
        elif not dev.hello_seen:
            # We have not heard its birth (edge restarted): ask for it again.
            dev.hello_seen = True
            self._send_later(dev.id, {"t": "cmd", "id": next(self._cmd_ids), "op": "hello"})
        if t == names.STATE:
            if "mem" in msg:
                dev.heap_free = msg["mem"]
            if self.stations.apply_state(dev.id, msg["boot"], msg["n"], msg["slots"],
                                         item.received):
                self.journal.submit(StateRecord(dev.id, msg["boot"], msg["n"], msg["slots"],
                                                item.received))
                self._station_changed(dev.station)
        elif t == names.EVENT:
            rental = None
            if msg["ev"] == names.RENTED:
                rental = self.rentals.on_rented(dev.id, msg["slot"], msg.get("bike"))
            body = {"type": msg["ev"], "site": self.cfg.site, "station": dev.station,
                    "device": dev.id, "slot": msg["slot"], "bike": msg.get("bike"),
                    "code": msg.get("code"), "epoch": msg["epoch"], "seq": msg["seq"],
                    "at": item.received, "rental_id": rental}
            rec = EventRecord(dev.id, msg["epoch"], msg["seq"], dev.station, msg["ev"],
                              msg["slot"], msg.get("bike"), msg.get("code"), item.received,
                              json.dumps(body, ensure_ascii=False) if self.cfg.uplinks
                              else None)
            if rec.kind == names.FAULT:
                dev.faults += 1
            self._acks.put_nowait((self.journal.submit(rec), item))
        elif t == names.RESULT:
            if msg.get("err") == "stale_ctr" and "ctr" in msg:
                # Sent before the device's hello told its counter floor (it
                # rebooted): number on above it; command() sends it again.
                self.keys.device_floor(dev.id, msg["ctr"])
            fut = self._pending.pop(msg["id"], None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif t == names.LOOKUP:
            self._lookup(dev.id, item)
        elif t in (names.COMMAND, names.ACK, names.FUNDS):
            raise Rejected("unexpected_type", f"{t} is edge-to-device only")

    def _send_later(self, dev: str, msg: dict[str, Any]) -> None:
        self._acks.put_nowait((_done(True), Inbound(dev, msg, self._routes[dev], "", 0.0)))

    async def _acker(self) -> None:
        # Acks go out in order, each only after its event is stored on disk. They
        # are not waited for one by one: an MQTT ack's PUBACK is a broker round
        # trip, and waiting for each capped ingest at ~1,500 events/s
        # (bench/ingest.py). A lost ack costs a resend, refused as a duplicate.
        sending: set[asyncio.Task[None]] = set()
        while True:
            if len(sending) >= _ACKS_IN_FLIGHT:
                await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
            fut, item = await self._acks.get()
            try:
                if item.msg["t"] != names.EVENT:
                    await item.reply(item.msg)  # a queued command (e.g. "send hello")
                    continue
                try:
                    new = await fut
                except Exception as exc:
                    self.metrics.inc("journal.error")
                    log.error("event from %s not stored (%s): no ack, it will be resent",
                              item.device, exc)
                    continue
                m = item.msg
                if new:
                    self.metrics.inc("events.stored")
                    log.info("event %s %s slot %d bike %s (seq %d)", m["dev"], m["ev"],
                             m["slot"], m.get("bike"), m["seq"])
                    self._notify("event", m)
                else:
                    self.metrics.inc("events.duplicate")
                t = asyncio.create_task(_send(item, {"t": "ack", "epoch": m["epoch"],
                                                     "seq": m["seq"]}))
                sending.add(t)
                t.add_done_callback(sending.discard)
            finally:
                self._acks.task_done()

    def _station_changed(self, station: str) -> None:
        if station not in self.stations.by_id:
            return  # a kiosk: no station to report
        self._notify("state", {"station": station})
        if not self.cfg.uplinks:
            return
        st = self.stations.by_id[station].status(self.started)
        body = {**asdict(st), "site": self.cfg.site, "version": self.stations.version}
        # Coalesced in the outbox: the backend gets the newest per station, in order.
        self.journal.submit(OutboxRecord("status", f"status:{station}", station,
                                         json.dumps(body)))

    async def _kiosk_feed(self) -> None:
        """Kiosks show nearby bike availability on their idle screen: every 10 s
        each online kiosk gets this edge's first stations (name, bikes, docks)."""
        if not self.cfg.kiosks:
            return
        names_zh = {s.id: s.name_zh for s in self.cfg.stations}
        while True:
            near = [[names_zh[s.station_id], s.bikes_available, s.docks_available]
                    for s in self.stations.statuses()[:4]]
            for k in self.cfg.kiosks:
                dev = self.registry.get(k)
                reply = self._routes.get(k)
                if dev is not None and dev.online and reply is not None:
                    await reply({"t": "near", "stations": near})
            await asyncio.sleep(10)

    def start_rental(self, req: dict[str, Any]) -> None:
        """Run a rental from the backend; tracked so shutdown cancels it. A
        backend that sends more than MAX_TASKS at once is told to come back
        (its outbox retries), not given a task each."""
        if len(self._rental_tasks) >= MAX_TASKS:
            self.metrics.inc("rentals.rejected", "busy")
            self._warn.warning("busy", "%d requests in flight: rental %s refused for now",
                               len(self._rental_tasks), str(req.get("rental_id"))[:40])
            return
        self.spawn(self.rentals.rent(req), f"rental:{req.get('rental_id')}")

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        # Per-request work (rentals, kiosk lookups): tracked, cancelled at shutdown.
        t = asyncio.get_running_loop().create_task(coro, name=name)
        self._rental_tasks.add(t)
        t.add_done_callback(self._rental_tasks.discard)

    def is_kiosk(self, dev: str) -> bool:
        d = self.registry.get(dev)
        return d is not None and d.role == "kiosk"

    def _lookup(self, dev: str, item: Inbound) -> None:
        """A kiosk's fund lookup: only from a device registered as a kiosk, with
        a token of the kiosk's form, at a villager's pace (docs/kiosk.md)."""
        why = self.funds.admit(dev, item.msg["token"], time.monotonic())
        if why is not None:
            self.metrics.inc("funds.refused", why)
            self._warn.warning(why, "lookup from %s refused: %s", dev[:64], why)
            if why == "busy":  # a kiosk over its rate hears it; the rest hear nothing
                self.spawn(_send(item, {"t": names.FUNDS, "id": item.msg["id"], "ok": False,
                                        "err": "busy"}), f"lookup-busy:{dev}")
            return
        self.spawn(self._answer_lookup(item), f"lookup:{dev}:{item.msg['id']}")

    async def _answer_lookup(self, item: Inbound) -> None:
        answer = await self.funds.lookup(item.msg["token"])
        await item.reply(kiosk_funds_message(item.msg["id"], answer))

    def _notify(self, kind: str, payload: dict[str, Any]) -> None:
        for fn in self.listeners:
            fn(kind, payload)

    async def _retention(self, every_s: float = 3600.0) -> None:
        """Hourly: every table keeps what it needs, and no more (bounds in
        docs/security.md)."""
        while True:
            await self.retention()
            await asyncio.sleep(every_s)

    async def retention(self) -> None:
        now, day = time.time(), 86400
        ev, rn, dl = await self.journal.retention(
            now - self.cfg.events_retention_days * day, now - 7 * day, self.cfg.dead_letter_max)
        for name, n in (("events", ev), ("rentals", rn), ("dead_letter", dl)):
            if n:
                self.metrics.inc("retention.deleted", name, n)
        if ev or rn or dl:
            log.info("retention: %d delivered events, %d finished rentals, %d dead letters "
                     "over %d deleted", ev, rn, dl, self.cfg.dead_letter_max)

    async def _offline_check(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.cfg.heartbeat_timeout_s / 3))
            for d in self.registry.expire():
                self.metrics.inc("devices.timed_out")
                log.warning("device %s silent for %.0f s: offline", d.id,
                            self.cfg.heartbeat_timeout_s)
                self.stations.set_online(d.id, False, time.time())
                self._station_changed(d.station)

    # -- commands ----------------------------------------------------------------
    async def provision(self, dev: str, station: str, kind: str, command_key: str,
                        mqtt_password_hash: str | None = None) -> None:
        """Register a device (huimin provision): it may talk to the edge from now
        on, and stays registered across restarts; its command key (and broker
        password hash, for `huimin broker`) go to the device-keys file."""
        if kind not in ("dock", "kiosk"):
            raise Rejected("bad_kind", kind)
        if station not in self.stations.by_id:
            raise Rejected("unknown_station", station)
        extra = {"mqtt_password": mqtt_password_hash} if mqtt_password_hash else {}
        await asyncio.to_thread(self.keys.add, dev, command_key, **extra)
        await self.journal.provisioned_put(dev, station, kind)
        self.registry.add(dev, station, kind)
        self.stations.add_device(dev, station)
        log.info("device %s registered at station %s (%s)", dev, station, kind)

    async def command(self, dev: str, op: str, wait_s: float = 5.0,
                      **args: Any) -> dict[str, Any]:
        """Send a command to a device and wait for its result message. A
        command the device refused as numbered below its floor (sent while it
        rebooted) is sent once more, numbered above it."""
        res = await self._command_once(dev, op, wait_s, **args)
        if res.get("err") == "stale_ctr":
            self.metrics.inc("commands.renumbered")
            res = await self._command_once(dev, op, wait_s, **args)
        return res

    async def _command_once(self, dev: str, op: str, wait_s: float,
                            **args: Any) -> dict[str, Any]:
        reply = self._routes.get(dev)
        if reply is None:
            raise Rejected("no_route", f"device {dev} has not been heard from")
        cid = next(self._cmd_ids)
        msg: dict[str, Any] = {"t": "cmd", "id": cid, "op": op, **args}
        message.check(msg)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        try:
            await reply(msg)
            async with asyncio.timeout(wait_s):
                return await fut
        finally:
            self._pending.pop(cid, None)


_ACKS_IN_FLIGHT = 256  # acks sent and not yet confirmed by the transport
MAX_TASKS = 1000  # rentals, lookups and rollouts in flight at once


async def _send(item: Inbound, msg: dict[str, Any]) -> None:
    await item.reply(msg)


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


def _done(v: bool) -> asyncio.Future[bool]:
    f: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    f.set_result(v)
    return f


def kiosk_funds_message(req_id: int, answer: dict[str, Any]) -> dict[str, Any]:
    """A lookup answer as the kiosk takes it: records as compact rows, newest
    first, the oldest dropped until the message fits the kiosk's buffer."""
    msg = {"t": names.FUNDS, "id": req_id, **answer}
    if "records" in msg:
        msg["records"] = [[r.get("programme", ""), int(r.get("amount_fen", 0)),
                           r.get("paid", ""), r.get("status", "")] for r in msg["records"]]
        while msg["records"] and _encoded_size(msg) > names.KIOSK_MAX_MESSAGE:
            msg["records"].pop()
    return msg


def _encoded_size(msg: dict[str, Any]) -> int:
    return len(json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode())
