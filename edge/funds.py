"""Kiosk lookups: a villager's livelihood-fund records by lookup token (the
kiosk's keyed hash; the edge never sees an ID number). Answers from the
edge's cache while fresh, asks the backend on a miss or when stale, and when
the backend is away answers from the cache marked `stale` with its date."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from cloud_bridge.errors import UplinkError
from cloud_bridge.webhook import WebhookUplink

if TYPE_CHECKING:
    from edge.service import EdgeService

log = logging.getLogger("edge.funds")
FRESH_S = 300.0  # answer from the cache without asking the backend
BACKEND_WAIT_S = 1.5  # a villager is waiting at the screen
MAX_RECORDS = 6  # newest first; keeps the answer inside one 1 KiB message


class Funds:
    def __init__(self, svc: EdgeService) -> None:
        self.svc = svc
        self.fresh_s = FRESH_S

    def _backend(self) -> WebhookUplink | None:
        return next((u for u in self.svc.bridge.uplinks if isinstance(u, WebhookUplink)), None)

    async def refresh(self, every_s: float = 600.0, batch: int = 50) -> None:
        """Background task: re-fetch cached villagers older than `every_s` so an
        offline day still shows recent payments. Quietly waits while the backend
        is away (lookups then answer from the cache, marked stale)."""
        while True:
            await asyncio.sleep(min(every_s, 60.0))
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
