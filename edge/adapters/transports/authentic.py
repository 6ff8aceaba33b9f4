"""The edge's check that a device's message is the device's own, shared by
both transports."""

from __future__ import annotations

import logging

from edge.core.metrics import Metrics
from edge.core.ports import DeviceAuth
from edge.core.ratelog import RateLimitedLog

log = logging.getLogger("edge.auth")
_warn = RateLimitedLog(log)


def authentic(keys: DeviceAuth, dev: str, data: bytes, metrics: Metrics, where: str) -> bool:
    """A device's message counts only if sealed with its key (docs/security.md):
    the broker's ACL already keeps one device off another's topics; this also
    holds when the broker itself cannot be trusted."""
    ok = keys.verify(dev, data)
    if ok:
        return True
    reason = "unregistered" if ok is None else "bad_mac"
    metrics.inc("rx.rejected", reason)
    _warn.warning(reason, "%s: dropped a message from %r: %s", where, dev[:64],
                "no key for it (not provisioned)" if ok is None else "its MAC is wrong")
    return False
