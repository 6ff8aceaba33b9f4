"""Device registry: which devices this edge serves (from the configuration),
and for each what it last said (firmware, slots, boot) and whether it is
online (heartbeats, Last Will)."""

from __future__ import annotations

import time
from collections.abc import Container
from dataclasses import dataclass, field

from edge.config import device_id_problem
from edge.core.errors import Rejected


@dataclass
class Device:
    id: str
    station: str
    kind: str = "dock"  # what the device says in its hello
    # What the edge registered it as (configuration or provisioning), which its
    # own hello cannot change: a dock never gets a kiosk's fund lookups.
    role: str = "dock"
    fw: str = ""
    slot_count: int = 0  # as its hello says (stations.py holds the slots' states)
    boot: int = 0
    epoch: str = ""
    transport: str = ""
    online: bool = False
    hello_seen: bool = False
    last_seen: float = 0.0  # wall clock, s
    last_seen_mono: float = field(default=0.0, repr=False)
    last_at: float = 0.0  # the latest event time this device stamped that the edge took
    faults: int = 0
    heap_free: int | None = None  # bytes, from the heartbeat (after a collection)
    heap_low: int | None = None  # the lowest heap_free the device saw since it booted
    journal_queued: int | None = None  # events on its flash waiting for the edge
    journal_max: int | None = None  # its flash journal's bound

    def flash_full(self) -> bool:
        """Near its journal's bound a dock refuses rentals (room is kept for a
        return to every slot): a technician should know."""
        return (self.journal_queued is not None and self.journal_max is not None
                and self.journal_queued >= self.journal_max - self.slot_count)
    ota: str = ""  # the last update's outcome, as the device reports it in hello

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "station": self.station, "kind": self.kind, "fw": self.fw,
                "slots": self.slot_count, "boot": self.boot, "transport": self.transport,
                "online": self.online, "last_seen": round(self.last_seen, 3),
                "faults": self.faults, "heap_free": self.heap_free, "heap_low": self.heap_low,
                "journal_queued": self.journal_queued, "journal_max": self.journal_max,
                "ota": self.ota}


class Registry:
    def __init__(self, device_station: dict[str, str], timeout_s: float,
                 kiosks: tuple[str, ...] = ()) -> None:
        self.devices = {d: Device(d, s, role="kiosk" if d in kiosks else "dock")
                        for d, s in device_station.items()}
        self.timeout_s = timeout_s

    def add(self, dev: str, station: str, kind: str) -> Device:
        d = self.devices.get(dev)
        if d is None:
            d = self.devices[dev] = Device(dev, station, kind)
        d.station, d.kind, d.role = station, kind, kind
        return d

    def kiosks(self) -> list[str]:
        """Every kiosk: listed in the configuration or provisioned since (its kind)."""
        return [d.id for d in self.devices.values() if d.role == "kiosk"]

    def get(self, dev: str) -> Device | None:
        return self.devices.get(dev)

    def seen(self, dev: Device, transport: str, now: float) -> bool:
        """Mark heard from; returns True if it just came online."""
        dev.last_seen = now
        dev.last_seen_mono = time.monotonic()
        dev.transport = transport
        came = not dev.online
        dev.online = True
        return came

    def expire(self) -> list[Device]:
        """Devices silent for longer than the timeout go offline; returns them."""
        now = time.monotonic()
        gone = []
        for d in self.devices.values():
            if d.online and now - d.last_seen_mono > self.timeout_s:
                d.online = False
                gone.append(d)
        return gone


def registration_problem(dev: str, station: str, kind: str, stations: Container[str],
                         has_keys: bool, replace: bool,
                         edge_account: str | None) -> Rejected | None:
    """Why a device cannot be registered as asked, or None: a bad or reserved id,
    the edge's own broker account, keys it has already (re-keyed only when asked),
    an unknown kind or station."""
    if (why := device_id_problem(dev)) is not None:
        return Rejected("bad_id", why)
    if edge_account is not None and dev == edge_account:
        return Rejected("bad_id", f"{dev} is the edge's own broker account")
    if has_keys and not replace:
        return Rejected("exists", f"device {dev} is registered already; re-provisioning "
                        "replaces its keys only when asked (huimin provision --replace)")
    if kind not in ("dock", "kiosk"):
        return Rejected("bad_kind", kind)
    if station not in stations:
        return Rejected("unknown_station", station)
    return None
