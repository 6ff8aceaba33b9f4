"""What the bridge needs of a way to the backend. A webhook (HTTPS) and an
MQTT link to a city broker both provide it; the bridge never asks which one
it holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from edge.config import UplinkConfig
from edge.core.records import OutboxRow

# Called with each rental the backend issues for this site (still unchecked).
OnRental = Callable[[Any], None]


class Uplink(Protocol):
    name: str
    cfg: UplinkConfig
    answers_funds: bool  # fetch_funds reaches the backend (a kiosk's lookups)

    async def deliver(self, rows: list[OutboxRow]) -> None:
        """Returns when the backend has the batch, else raises UplinkError."""

    async def run(self, on_rental: OnRental) -> None:
        """The uplink's own long-running work (a connection, a rental poll);
        hands each rental the backend issues to on_rental."""

    async def publish_feed(self, path: str, body: bytes) -> bool:
        """Publish a live document (GBFS) where this uplink can; False if it
        has no place for it."""

    async def fetch_funds(self, token: str, wait_s: float) -> dict[str, Any] | None:
        """A villager's fund records by lookup token; None if the backend has
        none; UplinkError if it cannot be asked this way."""

    async def close(self) -> None: ...
