"""Kiosk lookups: a villager's livelihood-fund records by lookup token (the
kiosk's keyed hash; the edge never sees an ID number). Answers from the
edge's cache while fresh, asks the backend on a miss or when stale, and when
the backend is away answers from the cache marked `stale` with its date."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from cloud_bridge.errors import UplinkError
from cloud_bridge.webhook import WebhookUplink

if TYPE_CHECKING:
    from edge.service import EdgeService

log = logging.getLogger("edge.funds")
FRESH_S = 300.0  # answer from the cache without asking the backend
# A villager's pace: a kiosk may ask BURST at once, then
# [edge] kiosk_lookups_per_minute (30: one every 2 s; a card read, the answer
# and the next villager take longer). Faster is a script walking ID numbers
# through a stolen kiosk's key and credentials (docs/privacy.md).
BURST = 10
MAX_CACHED = 50_000  # villagers remembered at most (a county's villages: ~10^4-10^5)
_TOKEN = re.compile(r"[0-9a-f]{32}")  # wire/idcard.py token(): 16 bytes, hex
BACKEND_WAIT_S = 1.5  # a villager is waiting at the screen
MAX_RECORDS = 6  # newest first; keeps the answer inside one 1 KiB message


class Funds:
    def __init__(self, svc: EdgeService) -> None:
        self.svc = svc
        self.fresh_s = FRESH_S
        self._buckets: dict[str, tuple[float, float]] = {}  # kiosk -> (tokens, at)

    def admit(self, dev: str, token: str, now: float) -> str | None:
        """None if this lookup may go ahead, else why not: not a kiosk (by the
        edge's configuration or provisioning, not by what the device says),
        a token not of the kiosks' form, or over the kiosk's rate."""
        if not self.svc.is_kiosk(dev):
            return "not_a_kiosk"
        if not _TOKEN.fullmatch(token):
            return "bad_token"
        have, at = self._buckets.get(dev, (float(BURST), now))
        have = min(float(BURST), have + (now - at) * self.svc.cfg.kiosk_lookups_per_minute / 60)
        if have < 1.0:
            self._buckets[dev] = (have, now)
            return "busy"
        self._buckets[dev] = (have - 1.0, now)
        return None

    def _backend(self) -> WebhookUplink | None:
        return next((u for u in self.svc.bridge.uplinks if isinstance(u, WebhookUplink)), None)

    async def start(self) -> None:
        """At start: a new region key (its id in the configuration) makes every
        cached token meaningless; they go at once (docs/privacy.md)."""
        key_id = self.svc.cfg.region_key_id
        if key_id and await self.svc.journal.meta_get("region_key_id") != key_id:
            n = await self.svc.journal.funds_clear()
            await self.svc.journal.meta_put("region_key_id", key_id)
            log.info("region key is now %r: %d cached fund answers forgotten", key_id, n)

    async def purge(self) -> int:
        """Villagers not seen within the retention, or beyond the cap, are
        forgotten: the cache holds who came lately, not everyone ever."""
        cfg = self.svc.cfg
        n = await self.svc.journal.funds_purge(time.time() - cfg.funds_retention_days * 86400,
                                               MAX_CACHED)
        if n:
            self.svc.metrics.inc("funds.expired", n=n)
        return n

    async def refresh(self, every_s: float = 600.0, batch: int = 50) -> None:
        """Background task: re-fetch cached villagers older than `every_s` so an
        offline day still shows recent payments, and forget those past the
        retention. Quietly waits while the backend is away (lookups then
        answer from the cache, marked stale)."""
        while True:
            await asyncio.sleep(min(every_s, 60.0))
            await self.purge()
            up = self._backend()
            if up is None:
                continue
            for token in await self.svc.journal.funds_stale(every_s, batch):
                try:
                    got = await up.fetch_funds(token, 5.0)
                except UplinkError:
                    break
                if got is not None:
                    await self._store(token, got)
                    self.svc.metrics.inc("funds.refreshed")

    async def _store(self, token: str, got: dict[str, Any]) -> dict[str, Any]:
        records = sorted(got["records"], key=lambda r: str(r.get("paid", "")),
                         reverse=True)[:MAX_RECORDS]
        as_of = float(got.get("as_of") or time.time())
        await self.svc.journal.funds_put(token, json.dumps(records, ensure_ascii=False), as_of)
        return {"ok": True, "records": records, "as_of": int(as_of), "stale": False}

    async def lookup(self, token: str) -> dict[str, Any]:
        m = self.svc.metrics
        await self.svc.journal.funds_touch(token)
        cached = await self.svc.journal.funds_get(token)
        now = time.time()
        if cached is not None and now - cached[2] < self.fresh_s:
            m.inc("funds.lookup", "cache")
            return {"ok": True, "records": json.loads(cached[0]), "as_of": int(cached[1]),
                    "stale": False}
        up = self._backend()
        if up is not None:
            try:
                got = await up.fetch_funds(token, BACKEND_WAIT_S)
            except UplinkError as exc:
                log.warning("fund lookup %s...: backend unavailable (%s)", token[:8], exc.reason)
            else:
                if got is None:
                    m.inc("funds.lookup", "unknown")
                    return {"ok": False, "err": "unknown"}
                m.inc("funds.lookup", "backend")
                return await self._store(token, got)
        if cached is not None:
            m.inc("funds.lookup", "stale")
            return {"ok": True, "records": json.loads(cached[0]), "as_of": int(cached[1]),
                    "stale": True}
        m.inc("funds.lookup", "unavailable")
        return {"ok": False, "err": "unavailable"}
