"""The rules of a kiosk's fund lookup, pure (edge/app/funds.py keeps the cache
and asks the backend): who may ask and how fast, when the cache answers alone,
what an answer holds, and which records it keeps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

FRESH_S = 300.0  # answer from the cache without asking the backend
# A villager's pace: a kiosk may ask BURST at once, then
# [edge] kiosk_lookups_per_minute (30: one every 2 s; a card read, the answer
# and the next villager take longer). Faster is a script walking ID numbers
# through a stolen kiosk's key and credentials (docs/privacy.md).
BURST = 10
TOKEN = re.compile(r"[0-9a-f]{32}")  # wire/idcard.py token(): 16 bytes, hex
MAX_RECORDS = 6  # newest first; keeps the answer inside one 1 KiB message

UNKNOWN: dict[str, Any] = {"ok": False, "err": "unknown"}  # the backend knows no such villager
UNAVAILABLE: dict[str, Any] = {"ok": False, "err": "unavailable"}  # no backend, no cache


@dataclass(frozen=True, slots=True)
class Bucket:
    """A kiosk's lookups left (fractional) when last counted, and when."""
    tokens: float
    at: float


def admit(role: str | None, token: str, bucket: Bucket | None, now: float,
          per_minute: float) -> tuple[str | None, Bucket | None]:
    """(None, the kiosk's bucket after this lookup) if it may go ahead, else (why
    not, the bucket to keep): not a kiosk (as the edge registered it, not as the
    device says), a token not of the kiosks' form, or over the kiosk's rate."""
    if role != "kiosk":
        return "not_a_kiosk", bucket
    if not TOKEN.fullmatch(token):
        return "bad_token", bucket
    b = bucket or Bucket(float(BURST), now)
    have = min(float(BURST), b.tokens + (now - b.at) * per_minute / 60)
    if have < 1.0:
        return "busy", Bucket(have, now)
    return None, Bucket(have - 1.0, now)


def fresh(checked_at: float, now: float, fresh_s: float = FRESH_S) -> bool:
    """The cache answers alone: the backend was asked about this villager lately."""
    return now - checked_at < fresh_s


def newest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records an answer keeps: the newest MAX_RECORDS, newest first."""
    return sorted(records, key=lambda r: str(r.get("paid", "")), reverse=True)[:MAX_RECORDS]


def answer(records: list[dict[str, Any]], as_of: float, stale: bool) -> dict[str, Any]:
    """Records found: from the backend now, or from the cache (stale: the backend
    could not be asked, and the kiosk shows the date they are from)."""
    return {"ok": True, "records": records, "as_of": int(as_of), "stale": stale}
