"""A rental that arrives over a broker (the city's MQTT broker or its NATS
tier): it unlocks a bike, so only the backend may send one. The message is
{"ts", "body", "sig"}, signed with this site's key as a webhook is
(cloud_bridge/signing.py); a stale timestamp is refused, and a replay within
the skew finds its rental_id already claimed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from cloud_bridge import signing
from edge.core.metrics import Metrics

log = logging.getLogger("bridge.rentals")


# A rental is a few hundred bytes; anything far bigger is not one (and is not parsed).
MAX_MESSAGE = 16 * 1024


def open_rental(secret: str, payload: bytes | bytearray | str | Any, metrics: Metrics,
                uplink: str) -> Any:
    """The rental the backend signed, or None (dropped, counted and logged). Never raises:
    whatever arrives (deep JSON, odd encodings, wrong types) is refused, not fatal."""
    try:
        if len(payload) > MAX_MESSAGE:
            raise ValueError("too big")
        env = json.loads(payload)
        if not isinstance(env, dict):
            raise ValueError("not an object")
        body, ts, sig = env["body"], env["ts"], env["sig"]
        if not isinstance(body, str) or not isinstance(sig, str):
            raise ValueError("body and sig are strings")
        body_bytes = body.encode("utf-8")
    except (ValueError, TypeError, KeyError, RecursionError):
        # RecursionError: JSON nested deeper than the interpreter's stack.
        metrics.inc("rentals.rejected", "malformed")
        log.warning("%s: malformed rental message dropped", uplink)
        return None
    why = signing.verify(secret, body_bytes,
                         {"X-Huimin-Timestamp": str(ts), "X-Huimin-Signature": sig})
    if why is not None:
        metrics.inc("rentals.rejected", "signature")
        log.warning("%s: rental refused: %s", uplink, why)
        return None
    try:
        rental = json.loads(body)
    except (ValueError, RecursionError):
        rental = None
    if not isinstance(rental, dict):
        metrics.inc("rentals.rejected", "malformed")
        log.warning("%s: signed rental is not a JSON object; dropped", uplink)
        return None
    return rental


def seal_rental(secret: str, rental: dict[str, Any]) -> bytes:
    """The backend's side: the message open_rental accepts."""
    body = json.dumps(rental, separators=(",", ":"))
    headers = signing.sign(secret, body.encode())
    return json.dumps({"ts": headers["X-Huimin-Timestamp"], "body": body,
                       "sig": headers["X-Huimin-Signature"]}).encode()


def hand_over(on_rental: Callable[[Any], None], rental: Any, metrics: Metrics,
              uplink: str) -> None:
    """Give the desk a rental. Whatever goes wrong with this one message is counted and
    logged here: the uplink's loop, and the rentals behind it, carry on (on NATS an
    exception would also leave the message unacked, redelivered into the same failure)."""
    try:
        on_rental(rental)
    except Exception:  # a per-message boundary: one rental, never the uplink
        metrics.inc("rentals.rejected", "error")
        log.exception("%s: a rental could not be taken; dropped", uplink)
