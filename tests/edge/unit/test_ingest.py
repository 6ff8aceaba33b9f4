"""The ingest rules (edge/core/ingest.py) with plain values: each message in,
the effects out; no broker, no MicroPython, no database."""

from __future__ import annotations

import pytest

from edge.config import StationConfig
from edge.core.errors import Rejected
from edge.core.ingest import (
    AskHello,
    Booted,
    CommandAnswered,
    CounterFloor,
    Ingest,
    LookupAsked,
    Reachable,
    StationChanged,
    StoreEvent,
    StoreState,
    SyncClock,
)
from edge.core.messages import Ack, Event, Hello, Lookup, Result, State, Status
from edge.core.metrics import Metrics
from edge.core.records import EventRecord
from edge.core.registry import Registry
from edge.core.rentals import RentalMachine, RentalRequest
from edge.core.stations import Stations

S1 = StationConfig("s1", "一号站", "One", 30.6, 119.6, ("d1",))
HELLO = Hello("d1", "dock", "1.0", 4, 2, "e1", "", 64)


def _ingest() -> Ingest:
    stations = Stations((S1,), 0.0)
    return Ingest(Registry({"d1": "s1", "k1": "s1"}, 90.0, ("k1",)), stations,
                  RentalMachine(stations), Metrics())


def test_a_hello_brings_a_dock_online_and_tells_its_counter_floor() -> None:
    ing = _ingest()
    out = ing.handle("d1", "mqtt", 10.0, HELLO)
    assert out == [Reachable("d1"), StationChanged("s1"), CounterFloor("d1", 64),
                   Booted(HELLO), SyncClock("d1", 10)]  # the edge's time, for event stamps
    d = ing.registry.devices["d1"]
    assert (d.online, d.fw, d.slot_count, d.boot, d.transport) == (True, "1.0", 4, 2, "mqtt")


def test_an_event_is_stored_then_acked_and_a_report_updates_the_station() -> None:
    ing = _ingest()
    ing.handle("d1", "mqtt", 10.0, HELLO)
    out = ing.handle("d1", "mqtt", 11.0, State("d1", 2, 0, "LLEE"))
    assert StationChanged("s1") in out and isinstance(out[1], StoreState)
    out = ing.handle("d1", "mqtt", 12.0, Event("d1", "e1", 7, "returned", 2, "0B01"))
    assert out == [Reachable("d1"), StoreEvent(
        EventRecord("d1", "e1", 7, "s1", "returned", 2, "0B01", None, 12.0), Ack("e1", 7, 12),
        None)]
    assert ing.handle("d1", "mqtt", 13.0, State("d1", 2, 0, "LLEE")) == [Reachable("d1")]


def test_a_message_before_any_hello_asks_for_one_once() -> None:
    ing = _ingest()  # the edge restarted: docks did not say hello again
    out = ing.handle("d1", "serial:/dev/ttyUSB0", 1.0, State("d1", 1, 5, "LL"))
    assert AskHello("d1") in out
    assert AskHello("d1") not in ing.handle("d1", "serial:/dev/ttyUSB0", 2.0,
                                            State("d1", 1, 6, "LE"))


@pytest.mark.parametrize(("device", "transport", "msg", "reason"), [
    ("d9", "mqtt", Status("d9", False), "unregistered"),
    ("d1", "mqtt", Event("k1", "e", 1, "rented", 0), "device_mismatch"),
    ("d1", "serial:/dev/ttyS0", Event("d1", "e", 1, "rented", 0), "wrong_transport"),
])
def test_refused_messages_say_why(device: str, transport: str, msg: Event | Status,
                                  reason: str) -> None:
    ing = _ingest()
    ing.handle("d1", "mqtt", 1.0, HELLO)
    with pytest.raises(Rejected) as e:
        ing.handle(device, transport, 2.0, msg)
    assert e.value.reason == reason


def test_a_will_from_an_older_boot_does_not_take_a_live_dock_offline() -> None:
    ing = _ingest()
    ing.handle("d1", "mqtt", 1.0, HELLO)  # boot 2
    assert ing.handle("d1", "mqtt", 2.0, Status("d1", False, 1)) == []
    assert ing.registry.devices["d1"].online
    assert ing.metrics.get("rx.stale_will") == 1
    assert ing.handle("d1", "mqtt", 3.0, Status("d1", False, 2)) == [StationChanged("s1")]
    assert not ing.registry.devices["d1"].online


def test_results_and_lookups_are_handed_on() -> None:
    ing = _ingest()
    ing.handle("d1", "mqtt", 1.0, HELLO)
    res = Result("d1", 5, False, "stale_ctr", None, 200)
    assert ing.handle("d1", "mqtt", 2.0, res)[-2:] == [CounterFloor("d1", 200),
                                                       CommandAnswered(res)]
    look = Lookup("k1", 3, "0" * 32)
    assert ing.handle("k1", "mqtt", 3.0, look)[-1] == LookupAsked("k1", look)


def test_a_rented_event_completes_the_rental_unlocking_that_slot() -> None:
    ing = _ingest()
    ing.handle("d1", "mqtt", 1.0, HELLO)
    ing.handle("d1", "mqtt", 1.5, State("d1", 2, 0, "LLLL"))
    machine = ing.rentals
    machine.request(RentalRequest("r-1", "s1", slot=3), 1.6)
    machine.sent("r-1", None, 1.7)
    out = ing.handle("d1", "mqtt", 2.0, Event("d1", "e1", 1, "rented", 3, "0B03"))
    ev = out[-1]
    assert isinstance(ev, StoreEvent) and ev.rental_id == "r-1"
    r = machine.completing["r-1"]
    assert r.result is not None and r.result.bike == "0B03" and "r-1" not in machine.active
    # After a power cut mid-unlock, the dock calls its bike's leaving a forced
    # removal (it lost the unlock): the rental the edge unlocked is what took it.
    machine.request(RentalRequest("r-2", "s1", slot=2), 3.0)
    machine.sent("r-2", None, 3.1)
    out = ing.handle("d1", "mqtt", 3.5, Event("d1", "e1", 3, "fault", 2, "0B02",
                                              code="forced_removal"))
    assert isinstance(out[-1], StoreEvent) and out[-1].rental_id == "r-2"
    out = ing.handle("d1", "mqtt", 3.6, Event("d1", "e1", 4, "fault", 0, "0B00",
                                              code="latch_lost"))
    assert isinstance(out[-1], StoreEvent) and out[-1].rental_id is None
    # Another slot's bike leaving completes nothing.
    out = ing.handle("d1", "mqtt", 3.0, Event("d1", "e1", 2, "rented", 1, "0B01"))
    assert isinstance(out[-1], StoreEvent) and out[-1].rental_id is None


def test_a_retained_state_from_an_earlier_boot_does_not_override_a_newer_one() -> None:
    """The broker hands a reconnecting edge the retained state of a dock's
    earlier boot after (or before) the new boot's reports: only the newest
    (boot, n) counts, whatever order they arrive in."""
    ing = _ingest()
    ing.handle("d1", "mqtt", 1.0, Hello("d1", "dock", "1.0", 4, 3, "e1"))
    assert isinstance(ing.handle("d1", "mqtt", 2.0, State("d1", 3, 0, "LLLE"))[1], StoreState)
    assert ing.handle("d1", "mqtt", 3.0, State("d1", 2, 90, "EEEE")) == [Reachable("d1")]
    assert ing.stations.statuses()[0].bikes_available == 3
    # A will sent by the old connection after the new birth changes nothing.
    assert ing.handle("d1", "mqtt", 4.0, Status("d1", False, 2)) == []
    assert ing.registry.devices["d1"].online
