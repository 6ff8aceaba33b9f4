"""What transports hand to the edge's core: a validated message object (from
the shared codec, wire.message), the device it came from, and how to answer.
Business logic sees these, never bytes or topics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

Reply = Callable[[dict[str, Any]], Awaitable[None]]


class DeviceAuth(Protocol):
    """What transports need of the devices' keys (edge/device_keys.py)."""

    def seal(self, dev: str, msg: dict[str, Any]) -> bytes:
        """The message's bytes as the device accepts them; KeyError if the
        device has no key."""

    def verify(self, dev: str, data: bytes) -> bool | None:
        """Whether the device sealed these bytes; None if it has no key."""


@dataclass(frozen=True)
class Inbound:
    device: str  # who the transport says sent it (topic, or the message for serial)
    msg: dict[str, Any]
    reply: Reply
    transport: str  # "serial:/dev/ttyUSB0" or "mqtt"
    received: float  # wall clock, s
