"""Edge errors, grouped by cause (what the caller does about each)."""

from __future__ import annotations


class EdgeError(Exception):
    """Base of the edge's own errors."""


class ConfigError(EdgeError):
    """The configuration file is wrong: fix it; the service does not start."""


class Rejected(EdgeError):
    """A peer's message was refused (unknown device, mismatch): count, log, drop."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
