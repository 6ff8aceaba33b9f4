"""HTTPS webhook uplink: batched, signed JSON posts of outbox items, each with
its idempotency key; and a signed long-poll for rentals the backend issued."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any

import aiohttp

from cloud_bridge.backend_format import webhook_batch
from cloud_bridge.errors import UplinkError
from cloud_bridge.signing import NONCE, sign, verify_answer
from cloud_bridge.uplink import OnRental
from edge.config import UplinkConfig
from edge.core.backoff import Backoff
from edge.core.records import OutboxRow

log = logging.getLogger("bridge.webhook")
MAX_BACKOFF_S = 60.0


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class WebhookUplink:
    answers_funds = True

    def __init__(self, cfg: UplinkConfig, site: str) -> None:
        self.cfg = cfg
        self.site = site
        self.name = cfg.name
        self._session: aiohttp.ClientSession | None = None

    async def run(self, on_rental: OnRental) -> None:
        """Long-polls the backend for this site's rentals, for ever."""
        backoff = Backoff(cap=MAX_BACKOFF_S, jitter=1.0)
        while True:
            try:
                rentals = await self.poll_rentals()
            except UplinkError as exc:
                log.warning("%s: rental poll failed: %s", self.name, exc.reason)
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            for r in rentals:
                on_rental(r)  # each runs on its own; results travel through the outbox

    async def publish_feed(self, path: str, body: bytes) -> bool:
        return False  # the backend reads the edge's own GBFS over HTTPS

    @property
    def base(self) -> str:
        return self.cfg.url.rsplit("/", 1)[0]

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def deliver(self, rows: list[OutboxRow]) -> None:
        """Post one batch; returns when the backend has stored it, else raises."""
        body = webhook_batch(self.site, time.time(), rows)
        headers = {"Content-Type": "application/json", **sign(self.cfg.secret, body)}
        try:
            async with self.session().post(self.cfg.url, data=body, headers=headers) as resp:
                text = (await resp.text())[:200]
                if resp.status in (200, 201, 204):
                    return
                if resp.status in (429, 503):
                    raise UplinkError(f"HTTP {resp.status}",
                                      _retry_after(resp.headers.get("Retry-After")))
                if resp.status in (400, 413, 422):
                    raise UplinkError(f"HTTP {resp.status}: {text}", permanent=True)
                if resp.status in (401, 403):
                    raise UplinkError(f"HTTP {resp.status}: backend refused our credentials "
                                      f"or signature (check the uplink secret): {text}")
                raise UplinkError(f"HTTP {resp.status}: {text}")
        except aiohttp.ClientSSLError as exc:
            raise UplinkError(f"TLS error: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UplinkError(f"{type(exc).__name__}: {exc}") from exc

    async def _signed_get(self, path: str, limit: aiohttp.ClientTimeout) -> tuple[int, Any]:
        """GET a backend resource the edge will act on: the request signed with
        this site's key and a fresh nonce; the answer must come back signed
        over that nonce, recently (cloud_bridge/signing.py), or it is refused."""
        nonce = secrets.token_hex(16)
        headers = {**sign(self.cfg.secret, path.encode()), NONCE: nonce}
        try:
            async with self.session().get(self.base + path, headers=headers,
                                          timeout=limit) as resp:
                body = await resp.read()
                why = verify_answer(self.cfg.secret, nonce, body, resp.headers)
                if why is not None:
                    if resp.status in (401, 403):
                        raise UplinkError(f"HTTP {resp.status}: the backend refused our "
                                          "credentials")
                    raise UplinkError(f"answer refused ({why})")
                return resp.status, json.loads(body) if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError, RecursionError) as exc:
            # RecursionError: a signed answer nested deeper than the stack; refused.
            raise UplinkError(f"{type(exc).__name__}: {exc}") from exc

    async def poll_rentals(self, wait_s: float = 20.0) -> list[dict[str, Any]]:
        """Long-poll the backend for rentals addressed to this site."""
        path = f"/edge/{self.site}/rentals?wait={wait_s:g}"
        timeout = aiohttp.ClientTimeout(total=wait_s + self.cfg.timeout_s)
        status, data = await self._signed_get(path, timeout)
        if status != 200:
            raise UplinkError(f"HTTP {status}")
        rentals = data.get("rentals") if isinstance(data, dict) else None
        if not isinstance(rentals, list):
            raise UplinkError("malformed rentals answer")
        return [r for r in rentals if isinstance(r, dict)]

    async def fetch_funds(self, token: str, wait_s: float) -> dict[str, Any] | None:
        """A villager's fund records by lookup token; None if the backend has none."""
        path = f"/edge/{self.site}/funds/{token}"
        status, data = await self._signed_get(path, aiohttp.ClientTimeout(total=wait_s))
        if status == 404:
            return None
        if status != 200:
            raise UplinkError(f"HTTP {status}")
        if not isinstance(data, dict) or not isinstance(data.get("records"), list):
            raise UplinkError("malformed fund records")
        return data
