"""The cloud bridge: for each configured uplink, a sender task that drains the
durable outbox in order (delete only after the backend stored a batch, retry
with exponential backoff and jitter, honour Retry-After), the uplink's own
work (a connection, a rental poll), live GBFS where an uplink publishes it,
and a gauge of each lane's backlog size and age."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable

from cloud_bridge.errors import UplinkError
from cloud_bridge.mqtt_uplink import MqttUplink
from cloud_bridge.nats_uplink import NatsUplink
from cloud_bridge.uplink import OnRental, Uplink
from cloud_bridge.webhook import WebhookUplink
from edge.config import EdgeConfig, UplinkConfig
from edge.core import gbfs
from edge.core.backoff import Backoff
from edge.core.metrics import Metrics
from edge.core.ports import Outbox
from edge.core.stations import Stations

log = logging.getLogger("bridge")
MAX_BACKOFF_S = 60.0


def make_uplink(cfg: UplinkConfig, site: str, metrics: Metrics,
                on_connected: Callable[[], None]) -> Uplink:
    if cfg.kind == "webhook":
        return WebhookUplink(cfg, site)
    if cfg.kind == "nats":
        return NatsUplink(cfg, site, metrics, on_connected)
    return MqttUplink(cfg, site, metrics, on_connected)


class Bridge:
    def __init__(self, cfg: EdgeConfig, outbox: Outbox, stations: Stations,
                 metrics: Metrics, on_rental: OnRental) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.stations = stations
        self.metrics = metrics
        self.on_rental = on_rental
        self.uplinks: list[Uplink] = [
            make_uplink(u, cfg.site, metrics, functools.partial(outbox.outbox_poke, u.name))
            for u in cfg.uplinks]
        self.backlog: dict[str, tuple[int, float]] = {}  # name -> (rows, age of oldest, s)
        self._feeds_dirty = asyncio.Event()

    def funds_source(self) -> Uplink | None:
        """The uplink that answers kiosks' fund lookups, if any does."""
        return next((u for u in self.uplinks if u.answers_funds), None)

    def station_changed(self) -> None:
        self._feeds_dirty.set()

    def tasks(self, tg: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        out = []
        for up in self.uplinks:
            out.append(tg.create_task(self._send(up), name=f"bridge:{up.name}:send"))
            out.append(tg.create_task(up.run(self.on_rental), name=f"bridge:{up.name}:run"))
        if self.uplinks:
            out.append(tg.create_task(self._gauges(), name="bridge:gauges"))
            out.append(tg.create_task(self._publish_feeds(), name="bridge:gbfs"))
        return out

    async def _publish_feeds(self) -> None:
        """GBFS station_status per version on uplinks that publish documents,
        on change (at most once a second: a busy town changes many times a
        second)."""
        while True:
            await self._feeds_dirty.wait()
            self._feeds_dirty.clear()
            statuses = self.stations.statuses()
            published = False
            for version in gbfs.VERSIONS:
                doc = gbfs.build(self.cfg, version, "station_status", statuses,
                                 self.stations.changed_at)
                body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
                for up in self.uplinks:
                    published |= await up.publish_feed(f"gbfs/{version}/station_status", body)
            if not published:
                return  # no uplink publishes documents: this task has nothing to do
            self.metrics.inc("gbfs.published")
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        for up in self.uplinks:
            await up.close()

    async def _send(self, up: Uplink) -> None:
        outbox, m = self.outbox, self.metrics
        backoff = Backoff(cap=MAX_BACKOFF_S, jitter=1.0)
        while True:
            rows = await outbox.outbox_batch(up.name, up.cfg.batch)
            if not rows:
                await outbox.outbox_wait(up.name, 5.0)
                continue
            try:
                await up.deliver(rows)
            except UplinkError as exc:
                m.inc(f"uplink.{up.name}.failed")
                if exc.permanent:
                    m.inc(f"uplink.{up.name}.dead_letter", n=len(rows))
                    log.error("%s refused %d items (%s): moved to dead_letter for a person",
                              up.name, len(rows), exc.reason)
                    await outbox.outbox_dead_letter(up.name, rows, exc.reason)
                    continue
                delay = backoff.next()
                if exc.retry_after is not None:  # the backend said when
                    delay = exc.retry_after
                log.warning("%s: %s; %d items wait, retry in %.1f s", up.name, exc.reason,
                            len(rows), delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            await outbox.outbox_done(up.name, [(r.id, r.version) for r in rows])
            m.inc(f"uplink.{up.name}.sent", n=len(rows))
            now = time.time()
            for r in rows:
                if r.kind == "event":  # created: when the event reached the edge
                    m.observe("event_to_backend", now - r.created, up.name)

    async def _gauges(self) -> None:
        while True:
            for up in self.uplinks:
                n, oldest = await self.outbox.outbox_stats(up.name)
                self.backlog[up.name] = (n, time.time() - oldest if oldest else 0.0)
            await asyncio.sleep(2)

