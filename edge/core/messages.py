"""Typed messages between devices and the edge.

A transport decodes bytes with the shared codec (wire.message checks shape,
types and sizes; the same file runs on the devices), then `parse` turns the
checked dict into one of the frozen classes below, once, at the boundary: the
core never looks a field up by string. Messages to a device are built as
classes too and written back into the codec's dicts by `to_wire`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from wire import kiosk_messages as _kiosk_messages  # noqa: F401  (registers the kiosk types)
from wire import message, names

# -- device -> edge ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """A device's birth: what it is and where its counters stand."""
    dev: str
    kind: str
    fw: str
    slots: int
    boot: int
    epoch: str  # the flash journal's epoch: (epoch, seq) names an event for good
    ota: str = ""  # the last update's outcome, or "receiving" in update mode
    ctr: int | None = None  # the last command counter it accepted (its floor)


@dataclass(frozen=True, slots=True)
class State:
    """A dock's slots, one character each (wire.message.SLOT_CHARS)."""
    dev: str
    boot: int
    n: int  # report number within the boot: older reports are stale
    slots: str
    mem: int | None = None  # free heap after a collection, bytes (heartbeats only)
    low: int | None = None  # the lowest such figure since the device booted
    queued: int | None = None  # events on the dock's flash not yet acked (heartbeats)
    queue_max: int | None = None  # the flash journal's bound


@dataclass(frozen=True, slots=True)
class Event:
    """A rent, return or fault, journaled on the dock's flash until acked."""
    dev: str
    epoch: str
    seq: int
    ev: str  # names.RENTED, RETURNED, FAULT
    slot: int
    bike: str | None = None
    code: str | None = None
    at: int | None = None  # when it happened, on the edge's clock (s); None: not synced


@dataclass(frozen=True, slots=True)
class Result:
    """A device's answer to a command, by the command's id."""
    dev: str
    id: int
    ok: bool
    err: str = ""
    slot: int | None = None
    ctr: int | None = None  # with err "stale_ctr": the device's counter floor


@dataclass(frozen=True, slots=True)
class Status:
    """Presence: the device's Last Will (offline) or its birth flag (online)."""
    dev: str
    online: bool
    boot: int | None = None


@dataclass(frozen=True, slots=True)
class Lookup:
    """A kiosk asks for a villager's fund records by lookup token."""
    dev: str
    id: int
    token: str


UpMessage = Hello | State | Event | Result | Status | Lookup


def parse(msg: dict[str, Any]) -> UpMessage:
    """A message the codec has checked (wire.message.check), as its class.
    Raises message.DecodeError for a type only the edge may send."""
    t = msg["t"]
    if t == names.HELLO:
        return Hello(msg["dev"], msg["kind"], msg["fw"], msg["slots"], msg["boot"],
                     msg["epoch"], msg.get("ota") or "", msg.get("ctr"))
    if t == names.STATE:
        return State(msg["dev"], msg["boot"], msg["n"], msg["slots"], msg.get("mem"),
                     msg.get("low"), msg.get("q"), msg.get("qmax"))
    if t == names.EVENT:
        return Event(msg["dev"], msg["epoch"], msg["seq"], msg["ev"], msg["slot"],
                     msg.get("bike"), msg.get("code"), msg.get("at"))
    if t == names.RESULT:
        return Result(msg["dev"], msg["id"], msg["ok"], msg.get("err") or "", msg.get("slot"),
                      msg.get("ctr"))
    if t == names.STATUS:
        return Status(msg["dev"], msg["online"], msg.get("boot"))
    if t == names.LOOKUP:
        return Lookup(msg["dev"], msg["id"], msg["token"])
    raise message.DecodeError("unexpected_type", f"{t} is edge-to-device only")


def decode(data: bytes) -> UpMessage:
    """Bytes from a device, checked by the codec and typed."""
    return parse(message.decode(data))


# -- edge -> device ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """A command; the link numbers (ctr) and seals (mac) it on the way out."""
    id: int
    op: str  # unlock, set_slot, reboot, hello, ota
    slot: int | None = None
    enabled: bool | None = None
    path: str | None = None
    off: int | None = None
    data: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """The event (epoch, seq) is stored: the dock may drop it from flash. It
    carries the edge's time, which keeps the dock's clock."""
    epoch: str
    seq: int
    now: int | None = None


@dataclass(frozen=True, slots=True)
class ClockSync:
    """The edge's time (whole seconds), sent after each hello."""
    now: int


@dataclass(frozen=True, slots=True)
class Near:
    """Nearby stations for a kiosk's idle screen: (name, bikes, free docks)."""
    stations: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class FundsAnswer:
    """A lookup's answer; records as compact rows [programme, fen, paid, status]."""
    id: int
    ok: bool
    err: str = ""
    records: tuple[tuple[str, int, str, str], ...] | None = None
    as_of: int | None = None
    stale: bool | None = None


DownMessage = Command | Ack | ClockSync | Near | FundsAnswer


def to_wire(m: DownMessage) -> dict[str, Any]:
    """The codec's dict for a message to a device (None fields left out)."""
    if isinstance(m, Command):
        out: dict[str, Any] = {"t": names.COMMAND, "id": m.id, "op": m.op}
        for k in ("slot", "enabled", "path", "off", "data"):
            v = getattr(m, k)
            if v is not None:
                out[k] = v
        return out
    if isinstance(m, Ack):
        out = {"t": names.ACK, "epoch": m.epoch, "seq": m.seq}
        if m.now is not None:
            out["now"] = m.now
        return out
    if isinstance(m, ClockSync):
        return {"t": "time", "now": m.now}
    if isinstance(m, Near):
        return {"t": names.NEAR, "stations": [list(s) for s in m.stations]}
    out = {"t": names.FUNDS, "id": m.id, "ok": m.ok}
    if m.err:
        out["err"] = m.err
    if m.records is not None:
        out["records"] = [list(r) for r in m.records]
    if m.as_of is not None:
        out["as_of"] = m.as_of
    if m.stale is not None:
        out["stale"] = m.stale
    # A kiosk's link takes KIOSK_MAX_MESSAGE bytes: the oldest records (last) go
    # until the answer fits.
    while out.get("records") and _encoded_size(out) > names.KIOSK_MAX_MESSAGE:
        out["records"].pop()
    return out


def _encoded_size(msg: dict[str, Any]) -> int:
    """As wire/message.py encode() writes it: compact JSON, UTF-8."""
    return len(json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode())
