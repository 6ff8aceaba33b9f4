"""MQTT uplink to a city broker (an EMQX/NATS cluster, or a local Mosquitto
bridged there; docs/bridge.md): outbox items are published QoS 1 and leave the
outbox only after the broker's PUBACK; a persistent session keeps rentals for
this site while the link is down. Topics, per site:

  huimin-city/<site>/events               rent/return/fault events (QoS 1)
  huimin-city/<site>/status/<station>     station status, retained (newest wins)
  huimin-city/<site>/rentals/results      rental outcomes (QoS 1)
  huimin-city/<site>/rentals/new          rentals for this site (subscribed, QoS 1)
  huimin-city/<site>/gbfs/<ver>/<feed>    GBFS documents, retained, on change
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import aiomqtt

from cloud_bridge import signing
from cloud_bridge.errors import UplinkError
from edge.config import UplinkConfig
from edge.journal import OutboxRow
from edge.transports.mqtt import NODELAY, raise_if_cancelling

if TYPE_CHECKING:
    from edge.service import EdgeService

log = logging.getLogger("bridge.mqtt")


class MqttUplink:
    def __init__(self, cfg: UplinkConfig, svc: EdgeService) -> None:
        self.cfg = cfg
        self.svc = svc
        self.name = cfg.name
        self.site = svc.cfg.site
        self.prefix = f"huimin-city/{self.site}"
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        url = urlparse(cfg.url)
        self.tls = url.scheme == "mqtts"  # verified against the system's CAs
        self.host, self.port = url.hostname or "127.0.0.1", url.port or (8883 if self.tls
                                                                           else 1883)

    def topic(self, row: OutboxRow) -> tuple[str, bool]:
        if row.kind == "status":
            return f"{self.prefix}/status/{row.key.split(':', 1)[1]}", True
        if row.kind == "rental":
            return f"{self.prefix}/rentals/results", False
        return f"{self.prefix}/events", False

    async def deliver(self, rows: list[OutboxRow]) -> None:
        client = self.client
        if client is None or not self.connected.is_set():
            raise UplinkError("city broker not connected")
        try:
            for r in rows:
                topic, retain = self.topic(r)
                payload = json.dumps({"key": r.key, "kind": r.kind, "body": json.loads(r.body)},
                                     ensure_ascii=False)
                await client.publish(topic, payload, qos=1, retain=retain)  # waits for PUBACK
        except aiomqtt.MqttError as exc:
            raise UplinkError(f"city broker: {exc}") from exc

    async def publish_retained(self, topic: str, payload: bytes) -> None:
        client = self.client
        if client is None or not self.connected.is_set():
            return  # GBFS is state, not history: the next change republishes it
        try:
            await client.publish(f"{self.prefix}/{topic}", payload, qos=1, retain=True)
        except aiomqtt.MqttError as exc:
            log.warning("%s: GBFS publish failed: %s", self.name, exc)

    async def run(self) -> None:
        """Connection supervisor: reconnect with backoff, resubscribe, take rentals."""
        delay = 0.5
        while True:
            try:
                async with aiomqtt.Client(
                        self.host, self.port, identifier=f"huimin-bridge-{self.site}",
                        username=self.cfg.username, password=self.cfg.password,
                        clean_session=False, keepalive=30, timeout=self.cfg.timeout_s,
                        socket_options=NODELAY,
                        tls_params=aiomqtt.TLSParameters() if self.tls else None) as c:
                    self.client = c
                    await c.subscribe(f"{self.prefix}/rentals/new", qos=1)
                    self.connected.set()
                    delay = 0.5
                    log.info("%s: connected to %s:%d", self.name, self.host, self.port)
                    self.svc.journal.outbox_changed[self.name].set()
                    async for m in c.messages:
                        self._rental(m.payload)
            except aiomqtt.MqttError as exc:
                raise_if_cancelling()
                log.warning("%s: %s; reconnecting in %.1f s", self.name, exc, delay)
            finally:
                self.connected.clear()
                self.client = None
            await asyncio.sleep(delay * (1 + random.random() / 2))
            delay = min(delay * 2, 30.0)

    def _rental(self, payload: Any) -> None:
        """A rental unlocks a bike, so only the backend may send one: the
        message is {"ts", "body", "sig"}, signed with this site's key as a
        webhook is (cloud_bridge/signing.py); a stale timestamp is refused, and
        a replay within the skew finds its rental_id already claimed."""
        try:
            env = json.loads(payload)
            assert isinstance(env, dict)
            body, ts, sig = env["body"], env["ts"], env["sig"]
            assert isinstance(body, str) and isinstance(sig, str)
        except (ValueError, TypeError, AssertionError, KeyError):
            self.svc.metrics.inc("rentals.rejected", "malformed")
            log.warning("%s: malformed rental message dropped", self.name)
            return
        why = signing.verify(self.cfg.secret, body.encode(),
                             {"X-Huimin-Timestamp": str(ts), "X-Huimin-Signature": sig})
        if why is not None:
            self.svc.metrics.inc("rentals.rejected", "signature")
            log.warning("%s: rental refused: %s", self.name, why)
            return
        try:
            req = json.loads(body)
            assert isinstance(req, dict)
        except (ValueError, AssertionError):
            self.svc.metrics.inc("rentals.rejected", "malformed")
            return
        self.svc.start_rental(req)

    async def close(self) -> None:
        pass
