"""Live station state: each station's docks report their slots as one
character per slot (wire.message SLOT_*); this module turns them into the
numbers riders see. A station whose docks went silent stops renting and
returning: its bikes count as disabled, never as phantom available bikes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edge.config import StationConfig
from edge.core.history import BikesHistory


@dataclass
class DeviceSlots:
    boot: int = 0
    n: int = -1
    slots: str = ""
    reported: float = 0.0  # wall clock of the dock's own last report
    online: bool = False


@dataclass(frozen=True)
class StationStatus:
    station_id: str
    capacity: int
    bikes_available: int
    bikes_disabled: int
    docks_available: int
    docks_disabled: int
    is_installed: bool
    is_renting: bool
    is_returning: bool
    last_reported: float
    online: bool


@dataclass
class Station:
    cfg: StationConfig
    devices: dict[str, DeviceSlots] = field(default_factory=dict)
    # Bumped by Stations on every change to this station's devices: its status
    # is worked out again only then (GBFS serves a thousand stations after each
    # change of one).
    changes: int = 0
    _status: tuple[int, float, StationStatus] | None = field(default=None, repr=False,
                                                             compare=False)

    def status(self, started: float) -> StationStatus:
        c = self._status
        if c is not None and c[0] == self.changes and c[1] == started:
            return c[2]
        st = self._work_out(started)
        self._status = (self.changes, started, st)
        return st

    def _work_out(self, started: float) -> StationStatus:
        bikes = bikes_off = docks = docks_off = cap = 0
        online = False
        last = 0.0
        for d in self.devices.values():
            cap += len(d.slots)
            last = max(last, d.reported)
            if d.online:
                online = True
                bikes += d.slots.count("L")
                docks += d.slots.count("E")
                bikes_off += d.slots.count("X") + d.slots.count("B")
                docks_off += d.slots.count("F") + d.slots.count("D")
            else:
                # Silent dock: nothing is rentable or returnable there.
                bikes_off += sum(d.slots.count(c) for c in "LXBU")
                docks_off += sum(d.slots.count(c) for c in "EFD")
        return StationStatus(
            station_id=self.cfg.id, capacity=cap, bikes_available=bikes,
            bikes_disabled=bikes_off, docks_available=docks, docks_disabled=docks_off,
            is_installed=True, is_renting=online, is_returning=online,
            # Never reported: the edge's start, so the field is never null.
            last_reported=last or started, online=online)


class Stations:
    def __init__(self, stations: tuple[StationConfig, ...], started: float) -> None:
        self.by_id = {s.id: Station(s, {d: DeviceSlots() for d in s.devices}) for s in stations}
        self._dev = {d: st for st in self.by_id.values() for d in st.cfg.devices}
        self.started = started
        self.version = 0  # bumped on every change riders could see
        self.changed_at = started
        self.history = BikesHistory()

    def _bump(self, now: float, st: Station) -> None:
        st.changes += 1
        self.version += 1
        self.changed_at = max(self.changed_at, now)
        self.history.note(st.cfg.id, now, st.status(self.started).bikes_available)

    def add_device(self, dev: str, station: str) -> None:
        """A device registered at run time (huimin provision) joins its station."""
        st = self.by_id[station]
        st.devices.setdefault(dev, DeviceSlots())
        st.changes += 1
        self._dev[dev] = st

    def apply_state(self, dev: str, boot: int, n: int, slots: str, reported: float) -> bool:
        """A dock's slot report; stale reports (older boot/sequence) are ignored."""
        st = self._dev.get(dev)
        if st is None:
            return False
        d = st.devices[dev]
        if (boot, n) <= (d.boot, d.n) and d.n >= 0:
            return False
        d.boot, d.n, d.slots, d.reported = boot, n, slots, reported
        d.online = True
        self._bump(reported, st)
        return True

    def restore(self, dev: str, boot: int, n: int, slots: str, reported: float) -> None:
        """State saved before a restart: known, but offline until the dock speaks."""
        st = self._dev.get(dev)
        if st is not None:
            st.devices[dev] = DeviceSlots(boot, n, slots, reported, online=False)
            st.changes += 1

    def set_online(self, dev: str, online: bool, now: float) -> None:
        st = self._dev.get(dev)
        if st is None:
            return
        d = st.devices[dev]
        if d.online != online:
            d.online = online
            if online:
                d.reported = max(d.reported, now)
            self._bump(now, st)

    def device_slots(self, dev: str) -> DeviceSlots | None:
        st = self._dev.get(dev)
        return st.devices[dev] if st is not None else None

    def statuses(self) -> list[StationStatus]:
        return [s.status(self.started) for s in self.by_id.values()]


def nearest(statuses: list[StationStatus], places: dict[str, tuple[float, float]],
            at: tuple[float, float] | None, n: int = 4) -> list[StationStatus]:
    """The n stations nearest a point (a kiosk's place), nearest first; with no
    point, the first n as configured. Distances on a small town's scale: degrees
    of longitude shortened by the latitude's cosine."""
    if at is None:
        return statuses[:n]
    k = math.cos(math.radians(at[0]))

    def far(s: StationStatus) -> float:
        lat, lon = places.get(s.station_id, (90.0, 0.0))
        return (lat - at[0]) ** 2 + ((lon - at[1]) * k) ** 2
    return sorted(statuses, key=far)[:n]
