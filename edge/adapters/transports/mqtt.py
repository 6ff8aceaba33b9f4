"""MQTT transport (aiomqtt): subscribes to the devices' topics, turns each
publish into an inbound message, and publishes replies on the device's down
topic. aiomqtt has no reconnect of its own: this supervisor reconnects with
backoff and subscribes again. A persistent session (clean_session off, fixed
client id) and QoS 1 let the broker keep device events while the edge is
away; the broker's queue limits are in the configuration `huimin broker` writes
(tools/broker.py), so it never drops them silently (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import aiomqtt
from wire import message, names

from edge.adapters.transports.authentic import authentic
from edge.config import MqttConfig
from edge.core import messages
from edge.core.backoff import Backoff
from edge.core.budget import DeviceBudget
from edge.core.metrics import Metrics
from edge.core.ports import DeviceAuth, Inbound
from edge.core.ratelog import RateLimitedLog
from edge.netutil import NODELAY, raise_if_cancelling

log = logging.getLogger("edge.mqtt")
_warn = RateLimitedLog(log)



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
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        # The edge's presence, retained, for devices and bridges to wait on.
        self._status_topic = names.topic(site, names.EDGE_PRESENCE, "status")
        # Messages the inbound queue had no room for, not yet acked to the
        # broker (at most its in-flight window), and the task releasing them.
        self._held: deque[tuple[Inbound, int, int]] = deque()
        self._releasing: asyncio.Task[None] | None = None
        self.session_started = 0.0  # perf_counter at the last CONNACK (bench/ingest.py)
        self.budget = DeviceBudget(cfg.device_rate_per_s, cfg.device_burst)

    def _client(self) -> aiomqtt.Client:
        c = self.cfg
        client = aiomqtt.Client(
            c.host, c.port, identifier=c.client_id, username=c.username, password=c.password,
            keepalive=c.keepalive, clean_session=False, timeout=10, socket_options=NODELAY,
            tls_params=aiomqtt.TLSParameters(ca_certs=str(c.ca)) if c.tls and c.ca else None,
            will=aiomqtt.Will(self._status_topic, b'{"online":false}', qos=1, retain=True))
        # Replies bypass aiomqtt (_Reply); its own few calls never near this.
        client.pending_calls_threshold = 300
        # Before it connects: a persistent session's backlog starts flowing
        # with the CONNACK, before any subscribe.
        self._take_from_paho(client)
        return client

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            delay: float | None = None
            try:
                async with self._client() as client:
                    self.client = client
                    # The CONNACK: a persistent session's backlog flows from here.
                    self.session_started = time.perf_counter()
                    for leaf in names.UP_LEAVES:
                        await client.subscribe(names.topic(self.site, "+", leaf), qos=1)
                    await client.publish(self._status_topic, b'{"online":true}', qos=1,
                                         retain=True)
                    self.connected.set()
                    backoff.reset()
                    log.info("mqtt: connected to %s:%d", self.cfg.host, self.cfg.port)
                    # Messages come through _from_paho; this iterator ends
                    # (raises) when the connection does.
                    async for m in client.messages:
                        await self._on_message(str(m.topic), m.payload)
            except aiomqtt.MqttError as exc:
                raise_if_cancelling()
                self.metrics.inc("mqtt.disconnects")
                delay = backoff.next()
                log.warning("mqtt: %s; reconnecting in %.1f s", exc, delay)
            finally:
                self.client = None
                self.connected.clear()
                if self._releasing is not None:
                    self._releasing.cancel()  # unacked: the broker sends them again
                self._held.clear()
            await asyncio.sleep(backoff.next() if delay is None else delay)

    def _take_from_paho(self, client: aiomqtt.Client) -> None:
        """Each message straight from paho's callback (on the loop's thread:
        aiomqtt drives paho's reads from the loop) instead of through
        aiomqtt's message objects, queue and iterator: those were a tenth of
        the edge's ingest time. paho's manual acks give the back-pressure the
        queue gave: a message the inbound queue has no room for is held
        unacknowledged, and the broker sends no more than its in-flight window
        (max_inflight_messages) until the edge catches up."""
        paho = client._client
        paho.manual_ack_set(True)
        paho.on_message = self._from_paho
        self._held.clear()

    def _from_paho(self, paho: Any, userdata: Any, m: Any) -> None:
        try:
            item = self._inbound(m.topic, m.payload)
        except Exception:  # a bug here must not break paho's reading for everyone
            self.metrics.inc("rx.error")
            log.exception("mqtt: error taking a message on %s", m.topic[:120])
            item = None
        if item is None:
            paho.ack(m.mid, m.qos)  # dropped and counted: nothing to wait for
            return
        if not self._held:
            try:
                self.inbound.put_nowait(item)
                paho.ack(m.mid, m.qos)
                return
            except asyncio.QueueFull:
                pass
        self._held.append((item, m.mid, m.qos))
        if self._releasing is None or self._releasing.done():
            self._releasing = asyncio.get_running_loop().create_task(
                self._release(paho), name="mqtt:held")

    async def _release(self, paho: Any) -> None:
        """Held messages into the queue as it makes room, in order, each acked
        to the broker then (so the broker resumes sending)."""
        while self._held:
            item, mid, qos = self._held[0]
            await self.inbound.put(item)
            self._held.popleft()
            if self.client is not None and self.client._client is paho:
                paho.ack(mid, qos)  # a new connection redelivers the rest itself

    async def _on_message(self, topic: str, payload: Any) -> None:
        item = self._inbound(topic, payload)
        if item is not None:
            await self.inbound.put(item)

    def _inbound(self, topic: str, payload: Any) -> Inbound | None:
        """The checked, typed message a publish carries, or None (dropped and
        counted, with a rate-limited line saying why)."""
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
        return Inbound(dev, messages.parse(msg), self._replier(dev), self.name, self.clock())

    def _replier(self, dev: str) -> _Reply:
        return _Reply(self, dev, names.topic(self.site, dev, names.DOWN_LEAF))


class _Reply:
    """A reply to one device, handed to paho's queue without waiting (waiting
    for each PUBACK in a task of its own was a third of the edge's ingest
    time: bench/ingest.py --profile).

    Acks go QoS 0: a lost ack costs the dock a resend, which the edge finds
    stored and acks again (the dock's journal keeps the event until then), so
    a PUBACK for each ack buys nothing, and handling them was another seventh
    of the time. Commands go QoS 1: the broker keeps them for the device's
    session, and the command's own deadline says whether it was done."""
    blocks = False  # it only queues: the door may await it inline (edge/app/links.py)
    __slots__ = ("dev", "topic", "transport")

    def __init__(self, transport: MqttTransport, dev: str, topic: str) -> None:
        self.transport, self.dev, self.topic = transport, dev, topic

    async def __call__(self, msg: dict[str, Any]) -> None:
        t = self.transport
        client = t.client
        if client is None:
            t.metrics.inc("tx.dropped", "mqtt_down")
            return
        try:
            data = t.keys.seal(self.dev, msg)
        except KeyError:
            t.metrics.inc("tx.dropped", "no_key")
            log.warning("mqtt: %s has no command key (not provisioned): not sent", self.dev)
            return
        # aiomqtt's publish would await the PUBACK; paho's own queues it (from
        # this, the loop's thread, as aiomqtt itself calls it).
        qos = 0 if msg.get("t") == names.ACK else 1
        info = client._client.publish(self.topic, data, qos=qos)
        if info.rc != 0:
            t.metrics.inc("tx.dropped", "mqtt_error")
            log.warning("mqtt: reply to %s failed: rc %s", self.dev, info.rc)
