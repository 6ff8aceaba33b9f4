"""The ingest rules: what the edge does with each message a device sends.

`Ingest.handle(inbound_fields, message, now)` updates the read model (registry
and stations) and returns effects, plain values the application layer carries
out (edge/app/ingest_loop.py): store an event and ack it after the commit,
store a slot report, tell the backend a station changed, ask a device for its
hello, hand a command's result or a kiosk's lookup on. Nothing here awaits,
sends or writes, so every rule is tested with plain values
(tests/edge/unit/test_ingest.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from wire import names

from edge.core.errors import Rejected
from edge.core.messages import Ack, Event, Hello, Lookup, Result, State, Status, UpMessage
from edge.core.metrics import Metrics
from edge.core.records import EventRecord, StateRecord
from edge.core.registry import Device, Registry
from edge.core.rentals import RentalMachine
from edge.core.stations import Stations

FORCED_REMOVAL = "forced_removal"  # a dock's fault code: its bike left with no unlock it knew

log = logging.getLogger("edge")


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """Store the event, then (only after the commit) send the ack."""
    record: EventRecord
    ack: Ack
    rental_id: str | None  # the rental this "rented" completes, if any


@dataclass(frozen=True, slots=True)
class StoreState:
    record: StateRecord


@dataclass(frozen=True, slots=True)
class StationChanged:
    station: str


@dataclass(frozen=True, slots=True)
class Reachable:
    """The device is heard on this inbound's link: answer it there."""
    device: str


@dataclass(frozen=True, slots=True)
class AskHello:
    """We missed the device's birth (the edge restarted): ask for it again."""
    device: str


@dataclass(frozen=True, slots=True)
class CommandAnswered:
    result: Result


@dataclass(frozen=True, slots=True)
class CounterFloor:
    """The device's command counter stands here: number later commands above."""
    device: str
    ctr: int


@dataclass(frozen=True, slots=True)
class SyncClock:
    """Tell the device the edge's time (after its hello)."""
    device: str
    now: int


@dataclass(frozen=True, slots=True)
class Booted:
    """A hello: a device back from a (re)boot (rollouts wait for it)."""
    hello: Hello


@dataclass(frozen=True, slots=True)
class LookupAsked:
    device: str
    lookup: Lookup


Effect = (StoreEvent | StoreState | StationChanged | Reachable | AskHello | CommandAnswered
          | CounterFloor | SyncClock | Booted | LookupAsked)


class Ingest:
    def __init__(self, registry: Registry, stations: Stations, rentals: RentalMachine,
                 metrics: Metrics) -> None:
        self.registry = registry
        self.stations = stations
        self.rentals = rentals
        self.metrics = metrics

    def handle(self, device: str, transport: str, received: float,
               msg: UpMessage) -> list[Effect]:
        """Raises Rejected (counted and logged by the caller) for a message the
        edge must not act on."""
        dev = self.registry.get(device)
        if dev is None:
            raise Rejected("unregistered", f"device {device!r} is not in the configuration")
        if msg.dev != device:
            raise Rejected("device_mismatch", f"message says {msg.dev!r}")
        t = _TYPE[type(msg)]
        if dev.transport and transport != dev.transport and not isinstance(msg, Hello):
            # A device's route moves only with its birth on the new link: one
            # stray message must not divert its commands (docs/security.md).
            raise Rejected("wrong_transport",
                           f"{t} via {transport}; the device is on {dev.transport}")
        self.metrics.inc("rx", t)
        if isinstance(msg, Status):
            return self._presence(dev, msg, received)
        out: list[Effect] = [Reachable(dev.id)]
        if self.registry.seen(dev, transport, received):
            log.info("device %s online via %s", dev.id, transport)
            self.stations.set_online(dev.id, True, received)
            out.append(StationChanged(dev.station))
        if isinstance(msg, Hello):
            out += self._hello(dev, msg)
            out.append(SyncClock(dev.id, int(received)))
        elif not dev.hello_seen:
            dev.hello_seen = True
            out.append(AskHello(dev.id))
        if isinstance(msg, State):
            out += self._state(dev, msg, received)
        elif isinstance(msg, Event):
            out.append(self._event(dev, msg, received))
        elif isinstance(msg, Result):
            if msg.err == "stale_ctr" and msg.ctr is not None:
                # Sent before the device's hello told its counter floor (it
                # rebooted): number on above it; the command is sent again.
                out.append(CounterFloor(dev.id, msg.ctr))
            out.append(CommandAnswered(msg))
        elif isinstance(msg, Lookup):
            out.append(LookupAsked(dev.id, msg))
        return out

    def _presence(self, dev: Device, msg: Status, received: float) -> list[Effect]:
        if msg.online:
            return []
        if (msg.boot if msg.boot is not None else dev.boot) < dev.boot:
            self.metrics.inc("rx.stale_will")
            return []  # a will from an older connection, overtaken by a new birth
        dev.online = False
        self.stations.set_online(dev.id, False, received)
        log.info("device %s offline (last will)", dev.id)
        return [StationChanged(dev.station)]

    def _hello(self, dev: Device, msg: Hello) -> list[Effect]:
        dev.hello_seen = True
        dev.kind, dev.fw, dev.slot_count = msg.kind, msg.fw, msg.slots
        dev.boot, dev.epoch = msg.boot, msg.epoch
        dev.ota = msg.ota or dev.ota
        log.info("device %s hello: %s fw %s, %d slots, boot %d%s", dev.id, dev.kind, dev.fw,
                 dev.slot_count, dev.boot, f", last update: {msg.ota}" if msg.ota else "")
        out: list[Effect] = [Booted(msg)]
        if msg.ctr is not None:
            out.insert(0, CounterFloor(dev.id, msg.ctr))
        return out

    def _state(self, dev: Device, msg: State, received: float) -> list[Effect]:
        if msg.mem is not None:
            dev.heap_free, dev.heap_low = msg.mem, msg.low
        if msg.queued is not None:
            dev.journal_queued, dev.journal_max = msg.queued, msg.queue_max
        if not self.stations.apply_state(dev.id, msg.boot, msg.n, msg.slots, received):
            return []
        return [StoreState(StateRecord(dev.id, msg.boot, msg.n, msg.slots, received)),
                StationChanged(dev.station)]

    def _event(self, dev: Device, msg: Event, received: float) -> StoreEvent:
        rental = None
        if msg.ev == names.RENTED or (msg.ev == names.FAULT and msg.code == FORCED_REMOVAL):
            # A dock that lost power mid-unlock no longer knows of the unlock, and
            # calls the bike gone while it was off a forced removal; the edge sent
            # that unlock, so the rental unlocking that slot is what took it.
            rental = self.rentals.bike_left(dev.id, msg.slot, msg.bike, received)
        if msg.ev == names.FAULT:
            dev.faults += 1
        happened, corrected = _when(dev, msg.at, received)
        if corrected:
            self.metrics.inc("events.at_corrected")
        rec = EventRecord(dev.id, msg.epoch, msg.seq, dev.station, msg.ev, msg.slot, msg.bike,
                          msg.code, received, happened, corrected=corrected)
        return StoreEvent(rec, Ack(msg.epoch, msg.seq, int(received)), rental)


# How far a dock's stamp may run ahead of the edge's clock, or behind the device's own
# previous stamp, before the edge stops vouching for it: riders pay by these times, and a
# dock whose clock was set back (a recorded `time` played to it) must not bill by it.
AT_AHEAD_S = 10.0
AT_BEHIND_S = 5.0


def _when(dev: Device, at: int | None, received: float) -> tuple[float | None, bool]:
    """When the event happened, as the edge can vouch for it: never after it arrived, never
    before this device's previous event; and whether the dock's own stamp was replaced."""
    if at is None:
        return None, False
    happened, corrected = float(at), False
    if happened > received + AT_AHEAD_S:
        happened, corrected = received, True
    elif happened < dev.last_at - AT_BEHIND_S:
        happened, corrected = dev.last_at, True
    dev.last_at = max(dev.last_at, happened)
    return happened, corrected


_TYPE: dict[type, str] = {Hello: names.HELLO, State: names.STATE, Event: names.EVENT,
                          Result: names.RESULT, Status: names.STATUS, Lookup: names.LOOKUP}
