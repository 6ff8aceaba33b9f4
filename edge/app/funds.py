"""Kiosk lookups: a villager's livelihood-fund records by lookup token (the
kiosk's keyed hash; the edge never sees an ID number). Answers from the
edge's cache while fresh, asks the backend on a miss or when stale, and when
the backend is away answers from the cache marked `stale` with its date. The
rules (who may ask, how fast, when the cache answers, what an answer keeps)
are edge/core/funds.py; this module keeps the cache and asks the backend."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from edge.app.links import DeviceLinks
from edge.core import funds as rules
from edge.core.errors import Rejected, UpstreamError
from edge.core.messages import FundsAnswer, Lookup
from edge.core.metrics import Metrics
from edge.core.ports import FundsSource
from edge.core.ratelog import RateLimitedLog
from edge.core.registry import Registry

log = logging.getLogger("edge.funds")
MAX_CACHED = 50_000  # villagers remembered at most (a county's villages: ~10^4-10^5)
BACKEND_WAIT_S = 1.5  # a villager is waiting at the screen


class FundsStore(Protocol):
    async def funds_get(self, token: str) -> tuple[str, float, float] | None: ...

    async def funds_stale(self, older_than_s: float, limit: int) -> list[str]: ...

    async def funds_put(self, token: str, records: str, as_of: float) -> None: ...

    async def funds_touch(self, token: str) -> None: ...

    async def funds_purge(self, cutoff: float, cap: int) -> int: ...

    async def funds_clear(self) -> int: ...

    async def meta_get(self, key: str) -> str | None: ...

    async def meta_put(self, key: str, value: str) -> None: ...


Spawn = Callable[[Coroutine[Any, Any, Any], str], None]


class Funds:
    def __init__(self, store: FundsStore, source: FundsSource | None, registry: Registry,
                 links: DeviceLinks, metrics: Metrics, spawn: Spawn, *,
                 lookups_per_minute: float, retention_days: float, region_key_id: str) -> None:
        self.store = store
        self.links = links
        self.source = source  # None: no uplink can ask the backend; the cache answers
        self.registry = registry
        self.metrics = metrics
        self.spawn = spawn
        self.per_minute = lookups_per_minute
        self.retention_days = retention_days
        self.region_key_id = region_key_id
        self.fresh_s = rules.FRESH_S
        self._buckets: dict[str, rules.Bucket] = {}  # kiosk -> its lookups left
        self._warn = RateLimitedLog(log)

    def on_lookup(self, dev: str, lookup: Lookup) -> None:
        """A kiosk's fund lookup: only from a device registered as a kiosk, with
        a token of the kiosk's form, at a villager's pace (docs/kiosk.md)."""
        why = self.admit(dev, lookup.token, time.monotonic())
        if why is not None:
            self.metrics.inc("funds.refused", why)
            self._warn.warning(why, "lookup from %s refused: %s", dev[:64], why)
            if why == "busy":  # a kiosk over its rate hears it; the rest hear nothing
                self.spawn(self._send(dev, FundsAnswer(lookup.id, False, "busy")),
                           f"lookup-busy:{dev}")
            return
        self.spawn(self._answer(dev, lookup), f"lookup:{dev}:{lookup.id}")

    async def _answer(self, dev: str, lookup: Lookup) -> None:
        await self._send(dev, funds_answer(lookup.id, await self.lookup(lookup.token)))

    async def _send(self, dev: str, answer: FundsAnswer) -> None:
        try:
            await self.links.send(dev, answer)
        except Rejected:
            self.metrics.inc("funds.unanswered")  # the kiosk went away meanwhile

    def admit(self, dev: str, token: str, now: float) -> str | None:
        """None if this lookup may go ahead, else why not (edge/core/funds.py admit)."""
        d = self.registry.get(dev)
        why, bucket = rules.admit(d.role if d is not None else None, token,
                                  self._buckets.get(dev), now, self.per_minute)
        if bucket is not None:
            self._buckets[dev] = bucket
        return why

    async def start(self) -> None:
        """At start: a new region key (its id in the configuration) makes every
        cached token meaningless; they go at once (docs/privacy.md)."""
        key_id = self.region_key_id
        if key_id and await self.store.meta_get("region_key_id") != key_id:
            n = await self.store.funds_clear()
            await self.store.meta_put("region_key_id", key_id)
            log.info("region key is now %r: %d cached fund answers forgotten", key_id, n)

    async def purge(self) -> int:
        """Villagers not seen within the retention, or beyond the cap, are
        forgotten: the cache holds who came lately, not everyone ever."""
        n = await self.store.funds_purge(time.time() - self.retention_days * 86400, MAX_CACHED)
        if n:
            self.metrics.inc("funds.expired", n=n)
        return n

    async def refresh(self, every_s: float = 600.0, batch: int = 50) -> None:
        """Background task: re-fetch cached villagers older than `every_s` so an
        offline day still shows recent payments, and forget those past the
        retention. Quietly waits while the backend is away (lookups then
        answer from the cache, marked stale)."""
        while True:
            await asyncio.sleep(min(every_s, 60.0))
            await self.purge()
            up = self.source
            if up is None:
                continue
            for token in await self.store.funds_stale(every_s, batch):
                try:
                    got = await up.fetch_funds(token, 5.0)
                except UpstreamError:
                    break
                if got is not None:
                    await self._store(token, got)
                    self.metrics.inc("funds.refreshed")

    async def _store(self, token: str, got: dict[str, Any]) -> dict[str, Any]:
        records = rules.newest(got["records"])
        as_of = float(got.get("as_of") or time.time())
        await self.store.funds_put(token, json.dumps(records, ensure_ascii=False), as_of)
        return rules.answer(records, as_of, stale=False)

    async def lookup(self, token: str) -> dict[str, Any]:
        m = self.metrics
        await self.store.funds_touch(token)
        cached = await self.store.funds_get(token)
        now = time.time()
        if cached is not None and rules.fresh(cached[2], now, self.fresh_s):
            m.inc("funds.lookup", "cache")
            return rules.answer(json.loads(cached[0]), cached[1], stale=False)
        up = self.source
        if up is not None:
            try:
                got = await up.fetch_funds(token, BACKEND_WAIT_S)
            except UpstreamError as exc:
                # No token in the log, not even a prefix: with the region key it names
                # the villager.
                log.warning("fund lookup: backend unavailable (%s)", exc.reason)
            else:
                if got is None:
                    m.inc("funds.lookup", "unknown")
                    return dict(rules.UNKNOWN)
                m.inc("funds.lookup", "backend")
                return await self._store(token, got)
        if cached is not None:
            m.inc("funds.lookup", "stale")
            return rules.answer(json.loads(cached[0]), cached[1], stale=True)
        m.inc("funds.lookup", "unavailable")
        return dict(rules.UNAVAILABLE)


def funds_answer(req_id: int, answer: dict[str, Any]) -> FundsAnswer:
    """A lookup's answer as the kiosk takes it: records as compact rows
    [programme, fen, paid, status], newest first (to_wire trims it to fit)."""
    rows = None
    if "records" in answer:
        rows = tuple((str(r.get("programme", "")), int(r.get("amount_fen", 0)),
                      str(r.get("paid", "")), str(r.get("status", "")))
                     for r in answer["records"])
    return FundsAnswer(req_id, bool(answer["ok"]), str(answer.get("err", "")), rows,
                       answer.get("as_of"), answer.get("stale"))
