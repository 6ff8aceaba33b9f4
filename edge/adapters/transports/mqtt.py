"""MQTT transport (aiomqtt): subscribes to the devices' topics, turns each
publish into an inbound message, and publishes replies on the device's down
topic. aiomqtt has no reconnect of its own: this supervisor reconnects with
backoff and subscribes again. A persistent session (clean_session off, fixed
client id) and QoS 1 let the broker keep device events while the edge is
away; the broker's queue limits are set in tools/mosquitto.conf so it never
drops them silently (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
from wire import message, names

from edge.adapters.transports.authentic import authentic
from edge.config import MqttConfig
from edge.core import messages
from edge.core.metrics import Metrics
from edge.core.ports import DeviceAuth, Inbound
from edge.core.ratelog import RateLimitedLog
from edge.netutil import NODELAY, raise_if_cancelling

log = logging.getLogger("edge.mqtt")
_warn = RateLimitedLog(log)

UP_LEAVES = ("hello", "state", "event", "result", "status", "lookup")
_EXPECTED = {"hello": names.HELLO, "state": names.STATE, "event": names.EVENT,
             "result": names.RESULT, "status": names.STATUS, "lookup": names.LOOKUP}


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
        self._status_topic = f"huimin/{site}/_edge/status"

    def _client(self) -> aiomqtt.Client:
        c = self.cfg
        client = aiomqtt.Client(
            c.host, c.port, identifier=c.client_id, username=c.username, password=c.password,
            keepalive=c.keepalive, clean_session=False, timeout=10, socket_options=NODELAY,
            tls_params=aiomqtt.TLSParameters(ca_certs=str(c.ca)) if c.tls and c.ca else None,
            will=aiomqtt.Will(self._status_topic, b'{"online":false}', qos=1, retain=True))
        # Acks are sent without waiting one by one (service._acker): up to 256 in
        # flight is normal, not worth aiomqtt's warning.
        client.pending_calls_threshold = 300
        return client

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with self._client() as client:
                    self.client = client
                    for leaf in UP_LEAVES:
                        await client.subscribe(f"huimin/{self.site}/+/{leaf}", qos=1)
                    await client.publish(self._status_topic, b'{"online":true}', qos=1,
                                         retain=True)
                    self.connected.set()
                    delay = 0.5
                    log.info("mqtt: connected to %s:%d", self.cfg.host, self.cfg.port)
                    async for m in client.messages:
                        await self._on_message(str(m.topic), m.payload)
            except aiomqtt.MqttError as exc:
                raise_if_cancelling()
                self.metrics.inc("mqtt.disconnects")
                log.warning("mqtt: %s; reconnecting in %.1f s", exc, delay)
            finally:
                self.client = None
                self.connected.clear()
            await asyncio.sleep(delay * (1 + random.random() / 2))
            delay = min(delay * 2, 30.0)

    async def _on_message(self, topic: str, payload: Any) -> None:
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
        await self.inbound.put(Inbound(dev, messages.parse(msg), self._replier(dev), self.name,
                                       self.clock()))

    def _replier(self, dev: str) -> _Reply:
        return _Reply(self, dev, f"huimin/{self.site}/{dev}/down")


class _Reply:
    """A reply to one device, handed to paho's queue without waiting (waiting
    for each PUBACK in a task of its own was a third of the edge's ingest
    time: bench/ingest.py --profile).

    Acks go QoS 0: a lost ack costs the dock a resend, which the edge finds
    stored and acks again (the dock's journal keeps the event until then), so
    a PUBACK for each ack buys nothing, and handling them was another seventh
    of the time. Commands go QoS 1: the broker keeps them for the device's
    session, and the command's own deadline says whether it was done."""
    blocks = False  # the ingest loop may await it inline (app/ingest_loop.py)
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
