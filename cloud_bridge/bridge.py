"""The cloud bridge: for each configured uplink, a sender task that drains the
durable outbox in order (delete only after the backend stored a batch, retry
with exponential backoff and jitter, honour Retry-After), the uplink's own
work (a connection, a rental poll), live GBFS where an uplink publishes it,
and a gauge of each lane's backlog size and age."""

from __future__ import annotations

import asyncio
import contextlib
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
from edge.core.records import OutboxRow
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
        """The lane's sender. While one batch travels, the next is read, and the one
        before is deleted: a backlog's batches follow each other without the store's
        round trips between them, and keep up with what comes in (bench/peer.py).
        Batches still go one at a time, in order."""
        outbox, m, name, size = self.outbox, self.metrics, up.name, up.cfg.batch
        backoff = Backoff(cap=MAX_BACKOFF_S, jitter=1.0)
        after = 0  # rows up to this id are delivered: reads start past it
        ahead: asyncio.Task[list[OutboxRow]] | None = None  # the next batch, being read
        deleting: asyncio.Task[int] | None = None  # the last batch delivered, being deleted
        try:
            while True:
                if ahead is not None:
                    rows, ahead = await ahead, None
                else:
                    rows = await outbox.outbox_batch(name, size, after)
                if not rows:
                    if deleting is not None:
                        await deleting
                        deleting = None
                    if after:
                        after = 0  # caught up: from the lane's start, to be sure
                        continue
                    await outbox.outbox_wait(name, 5.0)
                    continue
                ahead = asyncio.create_task(outbox.outbox_batch(name, size, rows[-1].id),
                                            name=f"bridge:{name}:read")
                try:
                    await up.deliver(rows)
                except UplinkError as exc:
                    await _dropped(ahead)
                    ahead, after = None, rows[0].id - 1  # these rows again, after the wait
                    m.inc(f"uplink.{name}.failed")
                    if exc.permanent:
                        m.inc(f"uplink.{name}.dead_letter", n=len(rows))
                        log.error("%s refused %d items (%s): moved to dead_letter for a "
                                  "person", name, len(rows), exc.reason)
                        await outbox.outbox_dead_letter(name, rows, exc.reason)
                        continue
                    delay = backoff.next()
                    if exc.retry_after is not None:  # the backend said when
                        delay = exc.retry_after
                    log.warning("%s: %s; %d items wait, retry in %.1f s", name, exc.reason,
                                len(rows), delay)
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                changed = await deleting if deleting is not None else 0
                deleting = asyncio.create_task(
                    outbox.outbox_done(name, [(r.id, r.version) for r in rows]),
                    name=f"bridge:{name}:delete")
                after = rows[-1].id
                if changed:
                    # A row changed while it travelled (a station's newer status) and
                    # stayed, behind `after`: read from the start, once the deletes are in.
                    await _dropped(ahead)
                    ahead = None
                    await deleting
                    deleting, after = None, 0
                m.inc(f"uplink.{name}.sent", n=len(rows))
                now = time.time()
                for r in rows:
                    if r.kind == "event":  # created: when the event reached the edge
                        m.observe("event_to_backend", now - r.created, name)
        finally:
            for t in (ahead, deleting):
                if t is not None:
                    t.cancel()

    async def _gauges(self) -> None:
        while True:
            for up in self.uplinks:
                n, oldest = await self.outbox.outbox_stats(up.name)
                self.backlog[up.name] = (n, time.time() - oldest if oldest else 0.0)
            await asyncio.sleep(2)


async def _dropped(read: asyncio.Task[list[OutboxRow]] | None) -> None:
    """A read ahead that will not be used: cancelled, and let finish."""
    if read is not None:
        read.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await read
