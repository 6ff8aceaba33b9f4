"""MQTT transport: subscribes to the devices' topics, turns each publish into
an inbound message, and publishes replies on the device's down topic. Our own
client (mqtt_client.py, on the sans-IO codec mqtt_codec.py) hands over every
message one socket read holds, and acknowledges each QoS 1 message to the
broker only once the edge is done with it (an event: committed), so an edge
that dies mid-batch gets the rest again from its persistent session (fixed
client id, clean_session off). This supervisor reconnects with backoff and
subscribes again. The broker's queue limits are in the configuration `huimin
broker` writes (tools/broker.py), so it never drops them silently
(docs/protocol.md)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from wire import message, names

from edge.adapters.transports.authentic import authentic
from edge.adapters.transports.mqtt_client import MqttConnection, MqttError
from edge.adapters.transports.mqtt_codec import Publish
from edge.config import MqttConfig
from edge.core import messages
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

    def _tls(self) -> ssl.SSLContext | None:
        if not self.cfg.tls:
            return None
        return ssl.create_default_context(cafile=str(self.cfg.ca) if self.cfg.ca else None)

    async def run(self) -> None:
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
        """One socket read's messages: each checked, then queued for the edge
        (waiting for room: the broker then holds the rest, at most its in-flight
        window sent), and acknowledged when the edge is done with it."""
        now = self.clock()
        for p in batch:
            done = functools.partial(conn.ack, p.pid) if p.qos else None
            try:
                item = self._inbound(p.topic, p.payload, now, done)
            except Exception:  # a bug here must not stop the reading for everyone
                self.metrics.inc("rx.error")
                log.exception("mqtt: error taking a message on %s", p.topic[:120])
                item = None
            if item is None:
                if done is not None:
                    done()  # dropped and counted: nothing to wait for
                continue
            try:
                self.inbound.put_nowait(item)
            except asyncio.QueueFull:
                await self.inbound.put(item)

    def _inbound(self, topic: str, payload: Any, now: float | None = None,
                 done: Callable[[], None] | None = None) -> Inbound | None:
        """The checked, typed message a publish carries, or None (dropped and
        counted, with a rate-limited line saying why). `done`: how the edge lets
        it go once finished with it (a QoS 1 message's PUBACK)."""
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
        data = bytes(payload)
        try:
            msg: dict[str, Any] = message.decode(data)
        except message.DecodeError as exc:
            self.metrics.inc("rx.rejected", exc.reason)
            _warn.warning(exc.reason, "mqtt: dropped message on %s: %s", topic, exc)
            return None
        if msg["t"] != names.UP_LEAVES[leaf]:
            self.metrics.inc("rx.rejected", "wrong_topic")
            _warn.warning("wrong_topic", "mqtt: %s message on %s", msg["t"], topic)
            return None
        if not authentic(self.keys, dev, data, self.metrics, "mqtt"):
            return None
        return Inbound(dev, messages.parse(msg), self._replier(dev), self.name,
                       self.clock() if now is None else now, done)

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
        try:
            data = t.keys.seal(self.dev, msg)
        except KeyError:
            t.metrics.inc("tx.dropped", "no_key")
            log.warning("mqtt: %s has no command key (not provisioned): not sent", self.dev)
            return
        try:
            conn.publish(self.topic, data, 0 if msg.get("t") == names.ACK else 1)
        except MqttError as exc:
            t.metrics.inc("tx.dropped", "mqtt_error")
            _warn.warning("reply", "mqtt: reply to %s not sent: %s", self.dev, exc)
