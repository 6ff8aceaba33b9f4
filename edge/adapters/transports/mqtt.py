"""MQTT transport: subscribes to the devices' topics, turns each publish into
an inbound message, and publishes replies on the device's down topic.

It runs paho's client on paho's own network thread (loop_start): the thread
reads and acknowledges publishes and hands them to the event loop in batches
(one wake-up per batch, not a task per message), and replies are queued into
paho from the loop without waiting for their PUBACK. This is what the broker
can deliver at (bench/ingest.py; ../shared/mqtt.md: paho alone reaches ~0.36x
of mosquitto_sub, aiomqtt ~0.17x). paho reconnects by itself with backoff
and the subscriptions are made again on each connect. A persistent session
(clean_session off, fixed client id) and QoS 1 let the broker keep device
events while the edge is away; the broker's queue limits are set in the
county's mosquitto.conf so it never drops them silently (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from wire import message, names

from edge.adapters.transports.authentic import authentic
from edge.config import MqttConfig
from edge.core import messages
from edge.core.metrics import Metrics
from edge.core.ports import DeviceAuth, Inbound
from edge.core.ratelog import RateLimitedLog
from edge.netutil import NODELAY

log = logging.getLogger("edge.mqtt")
_warn = RateLimitedLog(log)

UP_LEAVES = ("hello", "state", "event", "result", "status", "lookup")
_EXPECTED = {"hello": names.HELLO, "state": names.STATE, "event": names.EVENT,
             "result": names.RESULT, "status": names.STATUS, "lookup": names.LOOKUP}
# Messages paho's thread may hold for the loop; past it the thread waits, so
# the broker holds the rest (TCP back-pressure), not the edge's memory.
MAX_WAITING = 20_000


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
        self.connected = asyncio.Event()
        # The edge's presence, retained, for devices and bridges to wait on.
        self._status_topic = f"huimin/{site}/_edge/status"
        self._client: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Filled by paho's thread, emptied by the loop.
        self._waiting: list[tuple[str, bytes, float]] = []
        self._lock = threading.Condition()
        self._wake = asyncio.Event()

    def _make_client(self) -> paho.Client:
        c = self.cfg
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=c.client_id,
                             clean_session=False, protocol=paho.MQTTv311)
        client.username_pw_set(c.username, c.password)
        client.will_set(self._status_topic, b'{"online":false}', qos=1, retain=True)
        if c.tls and c.ca:
            client.tls_set(ca_certs=str(c.ca))  # the broker's certificate, verified
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        # Acks leave without waiting one by one: many may be in flight at once.
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message_thread
        client.on_socket_open = _nodelay
        return client

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        client = self._client = self._make_client()
        client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive)
        client.loop_start()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._drain()
        finally:
            self._client = None
            self.connected.clear()
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    # -- paho's thread --------------------------------------------------------------------
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            log.warning("mqtt: %s:%d refused the connection: %s", self.cfg.host, self.cfg.port,
                        reason)
            return
        client.subscribe([(f"huimin/{self.site}/+/{leaf}", 1) for leaf in UP_LEAVES])
        client.publish(self._status_topic, b'{"online":true}', qos=1, retain=True)
        log.info("mqtt: connected to %s:%d", self.cfg.host, self.cfg.port)
        self._call(self.connected.set)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.metrics.inc("mqtt.disconnects")
        log.warning("mqtt: disconnected (%s); paho reconnects", reason)
        self._call(self.connected.clear)

    def _on_message_thread(self, client: paho.Client, userdata: Any,
                           m: paho.MQTTMessage) -> None:
        with self._lock:
            while len(self._waiting) >= MAX_WAITING:
                self._lock.wait(1.0)
            first = not self._waiting
            self._waiting.append((m.topic, bytes(m.payload), self.clock()))
        if first:
            self._call(self._wake.set)

    def _call(self, fn: Callable[[], Any]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn)

    # -- the event loop -------------------------------------------------------------------
    async def _drain(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
            self._lock.notify_all()
        for topic, payload, received in batch:
            await self._on_message(topic, payload, received)

    async def _on_message(self, topic: str, payload: Any, received: float) -> None:
        parts = topic.split("/")
        if len(parts) != 4 or parts[3] not in _EXPECTED:
            self.metrics.inc("rx.rejected", "bad_topic")
            _warn.warning("bad_topic", "mqtt: message on unexpected topic %s", topic[:120])
            return
        dev, leaf = parts[2], parts[3]
        if dev == "_edge":
            return  # our own retained presence
        if not isinstance(payload, bytes | bytearray):
            self.metrics.inc("rx.rejected", "bad_payload")
            return
        if not payload:
            return  # a cleared retained message
        try:
            msg: dict[str, Any] = message.decode(bytes(payload))
        except message.DecodeError as exc:
            self.metrics.inc("rx.rejected", exc.reason)
            _warn.warning(exc.reason, "mqtt: dropped message on %s: %s", topic, exc)
            return
        if msg["t"] != _EXPECTED[leaf]:
            self.metrics.inc("rx.rejected", "wrong_topic")
            _warn.warning("wrong_topic", "mqtt: %s message on %s", msg["t"], topic)
            return
        if not authentic(self.keys, dev, bytes(payload), self.metrics, "mqtt"):
            return
        item = Inbound(dev, messages.parse(msg), self._replier(dev), self.name, received)
        if self.inbound.full():
            await self.inbound.put(item)  # the edge is behind: wait (paho's thread holds more)
        else:
            self.inbound.put_nowait(item)  # no coroutine per message on the common path

    def _replier(self, dev: str) -> Any:
        topic = f"huimin/{self.site}/{dev}/down"

        async def reply(msg: dict[str, Any]) -> None:
            client = self._client
            if client is None or not self.connected.is_set():
                self.metrics.inc("tx.dropped", "mqtt_down")
                return
            try:
                data = self.keys.seal(dev, msg)
            except KeyError:
                self.metrics.inc("tx.dropped", "no_key")
                log.warning("mqtt: %s has no command key (not provisioned): not sent", dev)
                return
            # Queued in paho and sent by its thread: no wait for the PUBACK (a
            # lost ack costs a resend, refused as a duplicate).
            info = client.publish(topic, data, qos=1)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                self.metrics.inc("tx.dropped", "mqtt_error")
                _warn.warning("tx", "mqtt: reply to %s not sent: %s", dev,
                              paho.error_string(info.rc))

        return reply


def _nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    # paho leaves Nagle on: a PUBACK and the next PUBLISH, two small writes,
    # would wait for the broker's delayed ACK (edge/netutil.py).
    for level, opt, value in NODELAY:
        try:
            sock.setsockopt(level, opt, value)
        except (OSError, AttributeError):
            pass
