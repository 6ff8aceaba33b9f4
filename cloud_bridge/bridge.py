"""The cloud bridge: for each configured uplink, a sender task that drains the
durable outbox in order (delete only after the backend stored a batch, retry
with exponential backoff and jitter, honour Retry-After), a gauge of backlog
size and age, and (webhook) a long-poll for rentals."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import TYPE_CHECKING

from cloud_bridge.errors import UplinkError
from cloud_bridge.mqtt_uplink import MqttUplink
from cloud_bridge.webhook import WebhookUplink
from edge import gbfs

if TYPE_CHECKING:
    from edge.service import EdgeService

log = logging.getLogger("bridge")
MAX_BACKOFF_S = 60.0


class Bridge:
    def __init__(self, svc: EdgeService) -> None:
        self.svc = svc
        self.uplinks: list[WebhookUplink | MqttUplink] = [
            WebhookUplink(u, svc.cfg.site) if u.kind == "webhook" else MqttUplink(u, svc)
            for u in svc.cfg.uplinks]
        self.backlog: dict[str, tuple[int, float]] = {}  # name -> (rows, age of oldest, s)
        self._gbfs_dirty = asyncio.Event()
        svc.listeners.append(self._on_change)

    def _on_change(self, kind: str, payload: dict[str, object]) -> None:
        if kind == "state":
            self._gbfs_dirty.set()

    def tasks(self, tg: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        out = []
        for up in self.uplinks:
            out.append(tg.create_task(self._send(up), name=f"bridge:{up.name}:send"))
            if isinstance(up, WebhookUplink):
                out.append(tg.create_task(self._rentals(up), name=f"bridge:{up.name}:rentals"))
            else:
                out.append(tg.create_task(up.run(), name=f"bridge:{up.name}:link"))
        if self.uplinks:
            out.append(tg.create_task(self._gauges(), name="bridge:gauges"))
        if any(isinstance(up, MqttUplink) for up in self.uplinks):
            out.append(tg.create_task(self._publish_gbfs(), name="bridge:gbfs"))
        return out

    async def _publish_gbfs(self) -> None:
        """Retained GBFS station_status per version on the city broker, on change
        (at most once a second: a busy town changes many times a second)."""
        st = self.svc.stations
        while True:
            await self._gbfs_dirty.wait()
            self._gbfs_dirty.clear()
            statuses = st.statuses()
            for version in gbfs.VERSIONS:
                doc = gbfs.build(self.svc.cfg, version, "station_status", statuses, st.changed_at)
                body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
                for up in self.uplinks:
                    if isinstance(up, MqttUplink):
                        await up.publish_retained(f"gbfs/{version}/station_status", body)
            self.svc.metrics.inc("gbfs.published")
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        for up in self.uplinks:
            await up.close()

    async def _send(self, up: WebhookUplink | MqttUplink) -> None:
        journal = self.svc.journal
        m = self.svc.metrics
        wake = journal.outbox_changed[up.name]
        backoff = 0.5
        while True:
            rows = await journal.outbox_batch(up.name, up.cfg.batch)
            if not rows:
                wake.clear()
                try:
                    async with asyncio.timeout(5):
                        await wake.wait()
                except TimeoutError:
                    pass
                continue
            try:
                await up.deliver(rows)
            except UplinkError as exc:
                m.inc(f"uplink.{up.name}.failed")
                if exc.permanent:
                    m.inc(f"uplink.{up.name}.dead_letter", n=len(rows))
                    log.error("%s refused %d items (%s): moved to dead_letter for a person",
                              up.name, len(rows), exc.reason)
                    await journal.outbox_dead_letter(up.name, rows, exc.reason)
                    continue
                delay = exc.retry_after if exc.retry_after is not None else \
                    backoff * (1 + random.random())
                log.warning("%s: %s; %d items wait, retry in %.1f s", up.name, exc.reason,
                            len(rows), delay)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 0.5
            await journal.outbox_done(up.name, [(r.id, r.version) for r in rows])
            m.inc(f"uplink.{up.name}.sent", n=len(rows))

    async def _rentals(self, up: WebhookUplink) -> None:
        backoff = 0.5
        while True:
            try:
                rentals = await up.poll_rentals()
            except UplinkError as exc:
                log.warning("%s: rental poll failed: %s", up.name, exc.reason)
                await asyncio.sleep(backoff * (1 + random.random()))
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 0.5
            for r in rentals:
                # Each rental runs on its own; results travel through the outbox.
                self.svc.start_rental(r)

    async def _gauges(self) -> None:
        while True:
            for up in self.uplinks:
                n, oldest = await self.svc.journal.outbox_stats(up.name)
                self.backlog[up.name] = (n, time.time() - oldest if oldest else 0.0)
            await asyncio.sleep(2)
