"""Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>", sent as
`X-Huimin-Timestamp` and `X-Huimin-Signature: sha256=<hex>`. The timestamp
bounds replays (the receiver refuses skews over five minutes).

The backend's answers that the edge acts on (rentals, fund records) are
signed the same way over "<timestamp>.<nonce>.<body>", where the nonce is the
one the edge sent with its request (`X-Huimin-Nonce`): an answer recorded
earlier, or made for another request, does not verify."""

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
    # As bytes: compare_digest refuses a str with non-ASCII characters (a TypeError).
    if not hmac.compare_digest(want.encode(), sig.encode("utf-8", "replace")):
        return "signature mismatch"
    return None


NONCE = "X-Huimin-Nonce"


def sign_answer(secret: str, nonce: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    return sign(secret, nonce.encode() + b"." + body, ts)


def verify_answer(secret: str, nonce: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """None if the answer is the backend's, for this request, and fresh."""
    return verify(secret, nonce.encode() + b"." + body, headers)
