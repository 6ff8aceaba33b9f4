"""Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>", sent as
`X-Huimin-Timestamp` and `X-Huimin-Signature: sha256=<hex>`. The timestamp
bounds replays (the receiver refuses skews over five minutes)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

MAX_SKEW_S = 300


def sign(secret: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Huimin-Timestamp": str(ts), "X-Huimin-Signature": f"sha256={mac}"}


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """None if valid, else the reason (for a clear 401)."""
    ts, sig = headers.get("X-Huimin-Timestamp"), headers.get("X-Huimin-Signature")
    if not ts or not sig:
        return "missing signature headers"
    try:
        t = int(ts)
    except ValueError:
        return "bad timestamp"
    if abs(time.time() - t) > MAX_SKEW_S:
        return "timestamp outside the allowed skew"
    want = sign(secret, body, t)["X-Huimin-Signature"]
    if not hmac.compare_digest(want, sig):
        return "signature mismatch"
    return None
