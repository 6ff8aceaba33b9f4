"""MQTT transport: subscribes to the devices' topics, turns each publish into
an inbound message, and publishes replies on the device's down topic. Our own
client (mqtt_client.py, on the sans-IO codec mqtt_codec.py) hands over every
message one socket read holds, and acknowledges each QoS 1 message to the
broker only once the edge is done with it (an event: committed), so an edge
that dies mid-batch gets the rest again from its persistent session (fixed
client id, clean_session off). This supervisor reconnects with backoff and
subscribes again. The broker's queue limits are in the configuration `huimin
broker` writes (tools/broker.py), so it never drops them silently
(docs/protocol.md).

Checking each message and sealing each reply run in a worker process beside
the edge ([mqtt] worker_processes, device_wire.py), in the order they came:
the reading goes on meanwhile, and the event loop keeps the rules, the
commits and the acks' bookkeeping."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from wire import names

from edge.adapters.transports import device_wire
from edge.adapters.transports.device_wire import CHECK, SEAL, WireWorker, WorkerError
from edge.adapters.transports.mqtt_client import MqttConnection, MqttError
from edge.adapters.transports.mqtt_codec import Publish
from edge.config import MqttConfig
from edge.core.backoff import Backoff
from edge.core.budget import DeviceBudget
from edge.core.metrics import Metrics
from edge.core.ports import DeviceAuth, Inbound
from edge.core.ratelog import RateLimitedLog

log = logging.getLogger("edge.mqtt")
_warn = RateLimitedLog(log)

OFFLINE, ONLINE = b'{"online":false}', b'{"online":true}'
# The broker takes at most 4,096 bytes a message (tools/broker.py); anything
# much larger from it is not a device's message: the connection is dropped.
MAX_PACKET = 64 * 1024
CHECKING = 8  # socket reads with the wire worker at once, at most


class MqttTransport:
    def __init__(self, cfg: MqttConfig, site: str, inbound: asyncio.Queue[Inbound],
                 metrics: Metrics, keys: DeviceAuth,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock  # the edge's wall clock: when a message was received
        self.keys = keys
        self.site = site
        self.name = "mqtt"
        self.inbound = inbound
        self.metrics = metrics
        self.conn: MqttConnection | None = None
        self.connected = asyncio.Event()
        # The edge's presence, retained, for devices and bridges to wait on.
        self._status_topic = names.topic(site, names.EDGE_PRESENCE, "status")
        self._replies: dict[str, _Reply] = {}
        self.session_started = 0.0  # perf_counter at the last CONNACK (bench/ingest.py)
        self.budget = DeviceBudget(cfg.device_rate_per_s, cfg.device_burst)
        self.worker: WireWorker | None = None  # the wire worker, while it runs
        # Requests with the worker, in the order sent: (CHECK or SEAL, the worker's
        # generation, and per message: whose it is and how to let it go, or which
        # reply at which QoS). Socket reads are bounded (CHECKING): beyond, the
        # reading waits, and so the broker.
        self._with_worker: asyncio.Queue[tuple[int, int, list[Any], float]] = asyncio.Queue()
        self._checking = asyncio.Semaphore(CHECKING)
        self._to_seal: list[tuple[_Reply, bytes, dict[str, Any], int]] = []
        self._ring = device_wire.KeyRing()
        self._answered = 0  # requests the worker answered (the watchdog's view of it)
        self._restarting = False
        self._tasks: set[asyncio.Future[None]] = set()  # a worker's restart

    def _tls(self) -> ssl.SSLContext | None:
        if not self.cfg.tls:
            return None
        return ssl.create_default_context(cafile=str(self.cfg.ca) if self.cfg.ca else None)

    async def run(self) -> None:
        worker = WireWorker() if self.cfg.worker_processes else None
        try:
            if worker is not None:
                try:
                    await worker.start()
                    self.worker = worker
                    log.info("mqtt: wire worker started (pid %s): devices' messages are "
                             "checked and sealed beside the edge", worker.pid)
                except OSError as exc:  # no process to be had: slower, not stopped
                    log.error("mqtt: the wire worker could not start (%s); checking and "
                              "sealing in the edge's own process", exc)
                    worker = None
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sessions(), name="mqtt:sessions")
                if worker is not None:
                    tg.create_task(self._hand_over(worker), name="mqtt:wire-worker")
        finally:
            self.worker = None
            for t in self._tasks:
                t.cancel()  # a restart under way: no worker outlives the transport
            if worker is not None:
                await asyncio.shield(worker.close())

    async def _sessions(self) -> None:
        backoff = Backoff()
        c = self.cfg
        while True:
            conn: MqttConnection | None = None
            delay: float | None = None
            try:
                conn = await MqttConnection.open(
                    c.host, c.port, client_id=c.client_id, keepalive=c.keepalive,
                    on_batch=self._take, clean_session=False, username=c.username,
                    password=c.password, will=(self._status_topic, OFFLINE, 1, True),
                    tls=self._tls(), max_packet=MAX_PACKET)
                # The CONNACK: a persistent session's backlog flows from here.
                self.session_started = time.perf_counter()
                self.conn = conn
                await conn.subscribe([(names.topic(self.site, "+", leaf), 1)
                                      for leaf in names.UP_LEAVES])
                await conn.wait_published(conn.publish(self._status_topic, ONLINE, 1, True))
                self.connected.set()
                backoff.reset()
                log.info("mqtt: connected to %s:%d", c.host, c.port)
                await conn.wait_ended()
            except MqttError as exc:
                self.metrics.inc("mqtt.disconnects")
                delay = backoff.next()
                log.warning("mqtt: %s; reconnecting in %.1f s", exc, delay)
            finally:
                self.conn = None
                self.connected.clear()
                if conn is not None:
                    # Unacknowledged messages stay the broker's: it sends them again.
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(last=(self._status_topic, OFFLINE)))
            await asyncio.sleep(backoff.next() if delay is None else delay)

    async def _take(self, conn: MqttConnection, batch: list[Publish]) -> None:
        """One socket read's messages: each admitted and checked (by the wire
        worker while the reading goes on, or here), then queued for the edge
        (waiting for room: the broker then holds the rest, at most its in-flight
        window sent), and acknowledged when the edge is done with it."""
        now = self.clock()
        worker = self.worker
        if worker is not None and not worker.running:
            # It ended while idle: a new one, and a new session (nothing of this
            # read is acknowledged: the broker sends it again).
            await self._worker_ended(worker.started, "the wire worker ended")
            return
        admitted: list[tuple[tuple[str, str, bytes, bytes], Callable[[], None] | None]] = []
        for p in batch:
            done = functools.partial(conn.ack, p.pid) if p.qos else None
            try:
                a = self._admit(p.topic, p.payload)
            except Exception:  # a bug here must not stop the reading for everyone
                self.metrics.inc("rx.error")
                log.exception("mqtt: error taking a message on %s", p.topic[:120])
                a = None
            if a is None:
                if done is not None:
                    done()  # dropped and counted: nothing to wait for
                continue
            admitted.append((a, done))
        if not admitted:
            return
        if worker is not None:
            await self._checking.acquire()  # released once handed over
            generation = worker.started
            try:
                worker.submit(CHECK, [(t, raw, data) for (_, t, raw, data), _ in admitted])
                self._with_worker.put_nowait(
                    (CHECK, generation, [(a[0], let_go) for a, let_go in admitted], now))
                await worker.drain()
            except WorkerError as exc:
                await self._worker_ended(generation, str(exc))
            return
        for (dev, expected, raw, data), let_go in admitted:
            await self._hand_one(dev, device_wire.check(expected, self._ring(raw), data),
                                 now, let_go)

    async def _hand_one(self, dev: str, checked: device_wire.Checked, now: float,
                        done: Callable[[], None] | None) -> None:
        """A checked message to the edge, or let go of (dropped and counted)."""
        item = self._checked(dev, checked, now, done)
        if item is None:
            if done is not None:
                done()
            return
        await self._queue(item)

    def worker_answered(self) -> int:
        """Requests the wire worker has answered."""
        return self._answered

    def worker_waiting(self) -> int:
        """Requests with the wire worker, not yet answered."""
        return self.worker.in_flight if self.worker is not None else 0

    async def _queue(self, item: Inbound) -> None:
        try:
            self.inbound.put_nowait(item)
        except asyncio.QueueFull:
            await self.inbound.put(item)

    async def _hand_over(self, worker: WireWorker) -> None:
        """The worker's results, in the order the requests went: each message
        typed and queued for the edge, or dropped and counted; each reply
        published. A worker that ends is started again, and the session with it:
        what it held was not acknowledged, so the broker sends it again."""
        while True:
            kind, generation, what, now = await self._with_worker.get()
            try:
                if generation != worker.started:
                    continue  # sent to a worker that ended
                try:
                    results = await worker.result()
                except WorkerError as exc:
                    await self._worker_ended(generation, str(exc))
                    continue
                self._answered += 1
                if kind == SEAL:
                    for (reply, qos), (ok, data) in zip(what, results, strict=True):
                        if ok:
                            reply.publish(data, qos)
                        else:
                            self.metrics.inc("tx.dropped", "not_encoded")
                            _warn.warning("encode", "mqtt: reply to %s not sent: %s",
                                          reply.dev, data)
                    continue
                for (dev, done), checked in zip(what, results, strict=True):
                    await self._hand_one(dev, checked, now, done)
            finally:
                if kind == CHECK:
                    self._checking.release()

    def _seal_later(self, reply: _Reply, raw: bytes, msg: dict[str, Any], qos: int) -> None:
        """A reply for the worker to seal: those of one turn of the loop go together
        (a batch's acks), after whatever the worker has in hand, in order."""
        if not self._to_seal:
            asyncio.get_running_loop().call_soon(self._send_to_seal)
        self._to_seal.append((reply, raw, msg, qos))

    def _send_to_seal(self) -> None:
        batch, self._to_seal = self._to_seal, []
        worker = self.worker
        if worker is not None and worker.running and not self._restarting:
            try:
                worker.submit(SEAL, [(raw, msg) for _, raw, msg, _ in batch])
            except WorkerError:
                pass
            else:
                self._with_worker.put_nowait((SEAL, worker.started,
                                              [(r, q) for r, _, _, q in batch], 0.0))
                return
        for reply, raw, msg, qos in batch:  # no worker just now: here
            try:
                reply.publish(device_wire.seal(self._ring(raw), msg), qos)
            except ValueError as exc:
                self.metrics.inc("tx.dropped", "not_encoded")
                _warn.warning("encode", "mqtt: reply to %s not sent: %s", reply.dev, exc)

    async def _worker_ended(self, generation: int, why: str) -> None:
        """The worker of that generation ended (noticed here or by the hand-over,
        once): start another, then a new session, so that what the old one held,
        never acknowledged, comes again from the broker. Replies it held are
        lost: an ack's dock sends its event again; a command runs out its time."""
        worker = self.worker
        if worker is None or worker.started != generation or self._restarting:
            return  # already started again, or being started
        self._restarting = True
        self.metrics.inc("mqtt.worker_restarts")
        log.error("mqtt: %s; starting another and reconnecting (what it held comes again "
                  "from the broker)", why)
        while not self._with_worker.empty():
            if self._with_worker.get_nowait()[0] == CHECK:
                self._checking.release()
        # Its own task: the caller may be the session's reader, which ending the
        # session cancels.
        restart = asyncio.ensure_future(self._restart(worker))
        self._tasks.add(restart)
        restart.add_done_callback(self._tasks.discard)
        await asyncio.shield(restart)

    async def _restart(self, worker: WireWorker) -> None:
        try:
            await worker.close()
            await worker.start()
        except OSError as exc:
            log.error("mqtt: the wire worker could not start again (%s); checking and "
                      "sealing in the edge's own process from now on", exc)
            self.worker = None
        finally:
            self._restarting = False
            if self.conn is not None:
                self.conn.abort("the wire worker ended")

    def _admit(self, topic: str, payload: Any) -> tuple[str, str, bytes, bytes] | None:
        """What may be checked: (device, the type its topic says, its key, the
        bytes), or None (dropped and counted: a bad topic, a device over its
        budget or without a key, an empty payload)."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[3] not in names.UP_LEAVES:
            self.metrics.inc("rx.rejected", "bad_topic")
            _warn.warning("bad_topic", "mqtt: message on unexpected topic %s", topic[:120])
            return None
        dev, leaf = parts[2], parts[3]
        if dev == "_edge":
            return None  # our own retained presence
        if not self.budget.take(dev, time.monotonic()):
            # Before decoding or checking anything of it: a flood costs no one else.
            self.metrics.inc("rx.over_budget", dev[:64])
            _warn.warning("over_budget", "mqtt: %s sends more than %g messages a second "
                          "(burst %d): dropped, counted; its events stay in its journal",
                          dev, self.cfg.device_rate_per_s, self.cfg.device_burst)
            return None
        if not isinstance(payload, bytes | bytearray):
            self.metrics.inc("rx.rejected", "bad_payload")
            return None
        if not payload:
            return None  # a cleared retained message
        raw = self.keys.command_key(dev)
        if raw is None:
            self.metrics.inc("rx.rejected", "unregistered")
            _warn.warning("unregistered", "mqtt: dropped a message from %r: no key for it "
                          "(not provisioned)", dev[:64])
            return None
        return dev, names.UP_LEAVES[leaf], raw, bytes(payload)

    def _checked(self, dev: str, checked: device_wire.Checked, now: float,
                 done: Callable[[], None] | None) -> Inbound | None:
        ok, what, detail = checked
        if not ok:
            self.metrics.inc("rx.rejected", what)
            _warn.warning(what, "mqtt: dropped a message from %r: %s", dev[:64], detail)
            return None
        return Inbound(dev, device_wire.typed(checked), self._replier(dev), self.name, now,
                       done)

    def _replier(self, dev: str) -> _Reply:
        r = self._replies.get(dev)
        if r is None:
            if len(self._replies) >= 100_000:  # bound: ids are the broker's accounts, few
                self._replies.clear()
            r = self._replies[dev] = _Reply(self, dev, names.topic(self.site, dev,
                                                                    names.DOWN_LEAF))
        return r


class _Reply:
    """A reply to one device, queued on the connection without waiting.

    Acks go QoS 0: a lost ack costs the dock a resend, which the edge finds
    stored and acks again (the dock's journal keeps the event until then), so
    a PUBACK for each ack buys nothing. Commands go QoS 1: the broker keeps
    them for the device's session, and the command's own deadline says
    whether it was done."""
    blocks = False  # it only queues: the door may await it inline (edge/app/links.py)
    __slots__ = ("dev", "topic", "transport")

    def __init__(self, transport: MqttTransport, dev: str, topic: str) -> None:
        self.transport, self.dev, self.topic = transport, dev, topic

    async def __call__(self, msg: dict[str, Any]) -> None:
        t = self.transport
        conn = t.conn
        if conn is None or conn.ended:
            t.metrics.inc("tx.dropped", "mqtt_down")
            return
        qos = 0 if msg.get("t") == names.ACK else 1
        try:
            if t.worker is not None:
                raw, msg = t.keys.to_seal(self.dev, msg)
                t._seal_later(self, raw, msg, qos)
                return
            data = t.keys.seal(self.dev, msg)
        except KeyError:
            t.metrics.inc("tx.dropped", "no_key")
            log.warning("mqtt: %s has no command key (not provisioned): not sent", self.dev)
            return
        self.publish(data, qos)

    def publish(self, data: bytes, qos: int) -> None:
        t = self.transport
        conn = t.conn
        if conn is None or conn.ended:
            t.metrics.inc("tx.dropped", "mqtt_down")
            return
        try:
            conn.publish(self.topic, data, qos)
        except MqttError as exc:
            t.metrics.inc("tx.dropped", "mqtt_error")
            _warn.warning("reply", "mqtt: reply to %s not sent: %s", self.dev, exc)
