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
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import aiomqtt
from wire.names import city_prefix

from cloud_bridge.errors import UplinkError
from cloud_bridge.rental_message import hand_over, open_rental
from cloud_bridge.uplink import OnRental
from edge.config import UplinkConfig
from edge.core.backoff import Backoff
from edge.core.metrics import Metrics
from edge.core.records import OutboxRow
from edge.netutil import NODELAY, raise_if_cancelling

log = logging.getLogger("bridge.mqtt")


class MqttUplink:
    answers_funds = False  # the city broker carries no request/answer for fund records

    def __init__(self, cfg: UplinkConfig, site: str, metrics: Metrics,
                 on_connected: Callable[[], None]) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self._on_connected = on_connected  # the outbox lane: send what waited
        self.name = cfg.name
        self.site = site
        self.prefix = city_prefix(self.site)
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

    async def publish_feed(self, path: str, body: bytes) -> bool:
        """Retained, so a subscriber gets the newest at once."""
        client = self.client
        if client is None or not self.connected.is_set():
            return True  # GBFS is state, not history: the next change republishes it
        try:
            await client.publish(f"{self.prefix}/{path}", body, qos=1, retain=True)
        except aiomqtt.MqttError as exc:
            log.warning("%s: GBFS publish failed: %s", self.name, exc)
        return True

    async def fetch_funds(self, token: str, wait_s: float) -> dict[str, Any] | None:
        raise UplinkError("fund lookups go through a webhook uplink")

    async def run(self, on_rental: OnRental) -> None:
        """Connection supervisor: reconnect with backoff, resubscribe, take rentals."""
        backoff = Backoff()
        while True:
            delay: float | None = None
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
                    backoff.reset()
                    log.info("%s: connected to %s:%d", self.name, self.host, self.port)
                    self._on_connected()
                    async for m in c.messages:
                        req = self._rental(m.payload)
                        if req is not None:
                            hand_over(on_rental, req, self.metrics, self.name)
            except aiomqtt.MqttError as exc:
                raise_if_cancelling()
                delay = backoff.next()
                log.warning("%s: %s; reconnecting in %.1f s", self.name, exc, delay)
            finally:
                self.connected.clear()
                self.client = None
            await asyncio.sleep(backoff.next() if delay is None else delay)

    def _rental(self, payload: Any) -> Any:
        return open_rental(self.cfg.secret, payload, self.metrics, self.name)

    async def close(self) -> None:
        pass
