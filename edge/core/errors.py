"""Edge errors, grouped by cause (what the caller does about each)."""

from __future__ import annotations


class EdgeError(Exception):
    """Base of the edge's own errors."""


class Rejected(EdgeError):
    """A peer's message was refused (unknown device, mismatch): count, log, drop."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class UpstreamError(EdgeError):
    """The backend could not be reached or refused (cloud_bridge raises its
    UplinkError, a kind of this): the caller falls back or retries later."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
