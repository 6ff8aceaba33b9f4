"""What the core and the application services need from the outside, as small
Protocols: the adapters (edge/adapters/, cloud_bridge/) provide them and the
runtime (edge/runtime.py) plugs them in; a unit test passes plain objects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edge.core.messages import UpMessage
from edge.core.records import OutboxRow


class Reply(Protocol):
    """Sends one message (the codec's dict) to the device it was bound to; a
    transport makes one per device, and only the edge's one door to the devices
    (edge/app/links.py) calls it."""

    @property
    def blocks(self) -> bool:
        """True: awaiting it waits on the link (a serial write); False: it only
        queues the message (MQTT), so it may be awaited inline."""

    def __call__(self, msg: dict[str, Any]) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class ReplyBy:
    """A Reply made of a coroutine function (a serial link's, a test's)."""
    send: Callable[[dict[str, Any]], Awaitable[None]]
    blocks: bool = True

    def __call__(self, msg: dict[str, Any]) -> Awaitable[None]:
        return self.send(msg)


# Not frozen, for speed, as EventRecord (edge/core/records.py): one for every message.
@dataclass(slots=True)
class Inbound:
    """What a transport hands the core: a typed message, who the link says sent
    it (topic, or the wired port's device list), and how to answer it."""
    device: str
    msg: UpMessage
    reply: Reply
    transport: str  # "serial:/dev/ttyUSB0" or "mqtt"
    received: float  # wall clock, s
    # Called once the edge is done with it: its event committed (or refused), any
    # other message handled. An MQTT transport acknowledges it to the broker then,
    # so a message is never let go of before it is on disk.
    done: Callable[[], None] | None = None


class DeviceAuth(Protocol):
    """What transports need of the devices' keys (edge/adapters/device_keys.py)."""

    def seal(self, dev: str, msg: dict[str, Any]) -> bytes:
        """The message's bytes as the device accepts them; KeyError if the
        device has no key."""

    def verify(self, dev: str, data: bytes) -> bool | None:
        """Whether the device sealed these bytes; None if it has no key."""

    def command_key(self, dev: str) -> bytes | None:
        """The device's key, for a worker that checks its messages; None if none."""

    def to_seal(self, dev: str, msg: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        """The device's key and the message as a worker is to seal it (a command
        numbered); KeyError if the device has no key."""


class FundsSource(Protocol):
    """The backend's fund records for a lookup token (an uplink that can ask)."""

    name: str

    async def fetch_funds(self, token: str, wait_s: float) -> dict[str, Any] | None:
        """The records ({"records": [...], "as_of"}), None if the backend has
        none; raises cloud_bridge.errors.UplinkError when it cannot be asked."""


class Outbox(Protocol):
    """The durable queue to the backend, one lane per uplink."""

    async def outbox_batch(self, uplink: str, limit: int, after: int = 0) -> list[OutboxRow]:
        """The lane's oldest rows with an id above `after`, in order."""

    async def outbox_done(self, uplink: str, done: list[tuple[int, int]]) -> int:
        """Delete delivered rows by (id, version); returns how many stayed
        because they changed while they travelled (a station's newer status)."""

    async def outbox_dead_letter(self, uplink: str, rows: list[OutboxRow],
                                 reason: str) -> None: ...

    async def outbox_stats(self, uplink: str) -> tuple[int, float | None]: ...

    async def outbox_wait(self, uplink: str, timeout_s: float) -> None:
        """Return when the uplink's lane may have gained rows, or after the timeout."""

    def outbox_poke(self, uplink: str) -> None:
        """Wake the lane's sender (the link came back)."""
