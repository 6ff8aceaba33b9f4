"""Uplink to the city tier: a NATS cluster with JetStream (docs/scaling.md).

Why NATS's own protocol and not its MQTT listener: JetStream answers each
publish after the stream has stored it on a quorum of nodes, so an outbox row
leaves the edge only once the city holds it on two machines; the MQTT
listener's PUBACK comes before that. Each event carries its site and key as
`Nats-Msg-Id`, so a batch resent after a lost answer is stored once (and the
backend drops duplicates by key after the window too).

Subjects, per site (this site's account may publish only these):

  city.<site>.events              rent/return/fault events
  city.<site>.results             rental outcomes
  city.<site>.status.<station>    station status (the stream keeps the newest)
  city.<site>.gbfs.<ver>.<feed>   GBFS documents (newest kept)

and it pulls its rentals from the durable consumer `rentals-<site>`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Callable
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from cloud_bridge.backend_format import item
from cloud_bridge.errors import UplinkError
from cloud_bridge.rental_message import hand_over, open_rental
from cloud_bridge.uplink import OnRental
from edge.config import UplinkConfig
from edge.core.backoff import Backoff
from edge.core.metrics import Metrics
from edge.core.records import OutboxRow
from edge.netutil import raise_if_cancelling

log = logging.getLogger("bridge.nats")

RENTALS_STREAM = "CITY_RENTALS"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def token(text: str) -> str:
    """One subject token: NATS splits on dots and treats * and > as wildcards."""
    return _UNSAFE.sub("_", text) or "_"


def envelope(r: OutboxRow) -> bytes:
    return item(r).encode()


class NatsUplink:
    answers_funds = False  # fund lookups stay on the webhook (request/answer)

    def __init__(self, cfg: UplinkConfig, site: str, metrics: Metrics,
                 on_connected: Callable[[], None]) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.site = site
        self.metrics = metrics
        self._on_connected = on_connected
        self.prefix = f"city.{token(site)}"
        self.nc: Client | None = None
        # One JetStream context for the connection's life: each context opens its
        # own reply subscription on its first publish_async, so a context per
        # batch left one more subscription on the client and the server each time.
        self.js: JetStreamContext | None = None
        self.connected = asyncio.Event()
        self._closing = False

    def subject(self, row: OutboxRow) -> str:
        if row.kind == "status":
            return f"{self.prefix}.status.{token(row.key.split(':', 1)[-1])}"
        if row.kind == "rental":
            return f"{self.prefix}.results"
        return f"{self.prefix}.events"

    async def deliver(self, rows: list[OutboxRow]) -> None:
        nc, js = self.nc, self.js
        if nc is None or js is None or not nc.is_connected:
            raise UplinkError("city tier not connected")
        futures: list[asyncio.Future[Any]] = []
        try:
            for r in rows:
                payload = envelope(r)
                # A status is state, not history: its newest replaces it, so
                # it carries no id to be deduplicated by.
                # The stream deduplicates by id across every site, and two
                # sites both have a dock-001: the id names the site.
                headers = None if r.kind == "status" else {"Nats-Msg-Id": f"{self.site}/{r.key}"}
                # No wait_stall: it costs a task per message; a batch (<= 1,000)
                # fits in the client's 4,000 pending publishes, and the whole
                # batch is under one deadline below anyway.
                futures.append(await js.publish_async(self.subject(r), payload,
                                                      headers=headers))
            async with asyncio.timeout(self.cfg.timeout_s):
                acks = await asyncio.gather(*futures)
        except TimeoutError as exc:
            raise UplinkError("city tier: no answer in time") from exc
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            # The stream full (its bound's policy refuses new messages), no
            # quorum after a node loss, a lost connection: all wait and retry.
            raise UplinkError(f"city tier: {exc}") from exc
        finally:
            for f in futures:
                if not f.done():
                    f.cancel()  # frees its place among the client's pending publishes
        dups = sum(1 for a in acks if a.duplicate)
        if dups:
            self.metrics.inc(f"uplink.{self.name}.duplicates", n=dups)

    async def publish_feed(self, path: str, body: bytes) -> bool:
        nc, js = self.nc, self.js
        if nc is None or js is None or not nc.is_connected:
            return True  # GBFS is state, not history: the next change republishes it
        subject = ".".join([self.prefix, *(token(p) for p in path.split("/"))])
        try:
            await js.publish(subject, body)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            log.warning("%s: GBFS publish failed: %s", self.name, exc)
        return True

    async def fetch_funds(self, token: str, wait_s: float) -> dict[str, Any] | None:
        raise UplinkError("fund lookups go through a webhook uplink")

    def _tls(self) -> ssl.SSLContext | None:
        if not any(u.startswith("tls://") for u in self.cfg.servers):
            return None
        return ssl.create_default_context(cafile=str(self.cfg.ca) if self.cfg.ca else None)

    async def _connect(self) -> Client:
        async def disconnected() -> None:
            self.connected.clear()
            if not self._closing:
                log.warning("%s: city tier link lost; reconnecting", self.name)

        async def reconnected() -> None:
            self.connected.set()
            log.info("%s: city tier link back", self.name)
            self._on_connected()

        async def error(exc: Exception) -> None:
            log.warning("%s: %s", self.name, str(exc) or type(exc).__name__)

        return await nats.connect(
            servers=self.cfg.servers, user=self.cfg.username, password=self.cfg.password,
            tls=self._tls(), name=f"huimin-edge-{self.site}",
            inbox_prefix=f"_INBOX_{token(self.site)}", connect_timeout=int(self.cfg.timeout_s),
            allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=1,
            disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error)

    async def run(self, on_rental: OnRental) -> None:
        """Connect (retrying with backoff: the city may be down when the edge
        starts), then pull this site's rentals; the client itself reconnects."""
        backoff = Backoff()
        while self.nc is None:
            try:
                nc = await self._connect()
                self.js = nc.jetstream(timeout=self.cfg.timeout_s)
                self.nc = nc
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                raise_if_cancelling()
                delay = backoff.next()
                log.warning("%s: city tier unreachable (%s); retrying in %.1f s", self.name,
                            str(exc) or type(exc).__name__, delay)
                await asyncio.sleep(delay)
        self.connected.set()
        log.info("%s: connected to the city tier (%s)", self.name,
                 self.nc.connected_url.netloc if self.nc.connected_url else "?")
        self._on_connected()
        assert self.js is not None
        await self._take_rentals(self.js, on_rental)

    async def _take_rentals(self, js: JetStreamContext, on_rental: OnRental) -> None:
        durable = f"rentals-{token(self.site)}"
        psub = await js.pull_subscribe_bind(durable=durable, stream=RENTALS_STREAM)
        while True:
            try:
                msgs = await psub.fetch(batch=16, timeout=5)
            except nats.errors.TimeoutError:
                continue
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                # Not connected, or the backend has not made our consumer yet.
                log.debug("%s: rentals: %s", self.name, exc)
                await asyncio.sleep(1.0)
                continue
            for m in msgs:
                req = open_rental(self.cfg.secret, m.data, self.metrics, self.name)
                if req is not None:
                    # The desk claims it by rental_id: a redelivery is a no-op.
                    hand_over(on_rental, req, self.metrics, self.name)
                try:
                    await m.ack()
                except nats.errors.Error:
                    pass  # redelivered after the ack wait; claimed already

    async def close(self) -> None:
        self._closing = True
        if self.nc is not None:
            try:
                await self.nc.close()
            except (nats.errors.Error, OSError):
                pass
