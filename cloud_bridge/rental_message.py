"""A rental that arrives over a broker (the city's MQTT broker or its NATS
tier): it unlocks a bike, so only the backend may send one. The message is
{"ts", "body", "sig"}, signed with this site's key as a webhook is
(cloud_bridge/signing.py); a stale timestamp is refused, and a replay within
the skew finds its rental_id already claimed."""

from __future__ import annotations

import json
import logging
from typing import Any

from cloud_bridge import signing
from edge.core.metrics import Metrics

log = logging.getLogger("bridge.rentals")


def open_rental(secret: str, payload: bytes | bytearray | str | Any, metrics: Metrics,
                uplink: str) -> Any:
    """The rental the backend signed, or None (dropped, counted and logged)."""
    try:
        env = json.loads(payload)
        assert isinstance(env, dict)
        body, ts, sig = env["body"], env["ts"], env["sig"]
        assert isinstance(body, str) and isinstance(sig, str)
    except (ValueError, TypeError, AssertionError, KeyError):
        metrics.inc("rentals.rejected", "malformed")
        log.warning("%s: malformed rental message dropped", uplink)
        return None
    why = signing.verify(secret, body.encode(),
                         {"X-Huimin-Timestamp": str(ts), "X-Huimin-Signature": sig})
    if why is not None:
        metrics.inc("rentals.rejected", "signature")
        log.warning("%s: rental refused: %s", uplink, why)
        return None
    try:
        return json.loads(body)
    except ValueError:
        metrics.inc("rentals.rejected", "malformed")
        return None


def seal_rental(secret: str, rental: dict[str, Any]) -> bytes:
    """The backend's side: the message open_rental accepts."""
    body = json.dumps(rental, separators=(",", ":"))
    headers = signing.sign(secret, body.encode())
    return json.dumps({"ts": headers["X-Huimin-Timestamp"], "body": body,
                       "sig": headers["X-Huimin-Signature"]}).encode()
