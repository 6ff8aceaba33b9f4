"""The audit's meaning checks (hardware/sim/audit.py) with plain values: a
dock's log as it writes it, the backend's events as it stores them. Each
check fails on the wrong story it is for (the one issue 26 found: a power cut
mid-unlock, then a second return of a bike that never left) and passes the
right one."""

from __future__ import annotations

from hardware.sim.audit import bike_and_time_story, slot_story


def _log(*lines: str) -> str:
    return "".join(f"I {1000 + i} dock: {ln}\n" for i, ln in enumerate(lines))


def test_a_return_into_a_full_slot_or_a_rental_nobody_unlocked_is_wrong() -> None:
    power_cut = _log("event returned slot=3 bike=0B07 seq=6", "command 4 unlock slot=3",
                     "dock dock-004 up: fw 0.1.0",  # not a story line: ignored
                     "event returned slot=3 bike=0B07 seq=10",
                     "command 5 unlock slot=3", "event rented slot=3 bike=0B07 seq=19")
    assert slot_story("dock-004", power_cut, {}) == [
        "dock-004 seq 10: bike 0B07 returned into slot 3, which already held a bike"]
    right = _log("event returned slot=3 bike=0B07 seq=6", "command 4 unlock slot=3",
                 "event rented slot=3 bike=0B07 seq=7", "event returned slot=3 bike=0B09 seq=8")
    assert slot_story("d", right, {}) == []
    unasked = _log("event returned slot=1 bike=0B01 seq=1", "event rented slot=1 bike=0B01 seq=2")
    assert slot_story("d", unasked, {}) == [
        "d seq 2: bike 0B01 rented from slot 1 with no unlock sent (a bike leaving unasked "
        "is a theft alarm)"]
    # A theft alarm empties the slot: the next return is right.
    theft = _log("event returned slot=1 bike=0B01 seq=1", "event fault slot=1 bike=0B01 seq=2",
                 "event returned slot=1 bike=0B02 seq=3")
    assert slot_story("d", theft, {("d", 2): "forced_removal"}) == []
    assert len(slot_story("d", theft, {("d", 2): "latch_lost"})) == 1


def test_a_bike_out_of_balance_or_a_clock_running_back_is_wrong() -> None:
    def ev(seq: int, kind: str, bike: str, at: float, code: str | None = None) -> dict[str, object]:
        return {"device": "d1", "epoch": "e1", "seq": seq, "type": kind, "bike": bike,
                "at": at, "code": code, "key": f"ev:d1:e1:{seq}", "clock": "dock"}
    fine = [ev(1, "returned", "B1", 10), ev(2, "rented", "B1", 20), ev(3, "returned", "B1", 30),
            ev(4, "fault", "B1", 40, "forced_removal")]
    assert bike_and_time_story(fine) == []
    twice = [ev(1, "returned", "B1", 10), ev(2, "returned", "B1", 20)]
    assert bike_and_time_story(twice) == ["bike B1: +2 returns more than departures"]
    back = [ev(1, "returned", "B1", 10.4), ev(2, "rented", "B1", 10.0), ev(3, "returned", "B1", 5)]
    assert bike_and_time_story(back) == ["d1 seq 3: happened at 5, before seq 2 at 10"]
    # A time the edge gave on receipt (the dock unsynced since its boot) is later
    # than the event: not compared (seen after a watchdog reset).
    heard = [{**ev(5, "fault", "B2", 89.0, "latch_lost"), "clock": "edge"},
             ev(6, "rented", "B1", 83.0)]
    assert bike_and_time_story(heard) == []
