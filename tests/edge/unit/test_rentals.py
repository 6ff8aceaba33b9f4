"""Rentals as a transition table (edge/core/rentals.py), driven with plain
values and asserted on whole effect lists, and as the edge carries the effects
out (edge/app/rentals.py): a dock stand-in that answers commands in the
message model, the real SQLite store in a temporary folder, and a clock the
test moves. Includes the two states that used to stick after an edge restart
(a held reservation forgotten; a claimed rental answering `in_progress` for
ever) and a property over random interleavings of every input."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_

from edge.adapters.store import SqliteStore
from edge.app.links import DeviceLinks
from edge.app.rentals import RentalDesk
from edge.config import StationConfig
from edge.core.errors import Rejected
from edge.core.messages import Result
from edge.core.metrics import Metrics
from edge.core.ports import ReplyBy
from edge.core.records import EventRecord
from edge.core.rentals import (
    CLAIMED,
    DONE,
    EXPIRING,
    HOLDING,
    RELEASING,
    RELOCKING,
    TRANSITIONS,
    UNLOCKING,
    Answer,
    Ended,
    IllegalTransition,
    Outcome,
    Publish,
    Rental,
    RentalMachine,
    RentalRequest,
    Save,
    Send,
    WaitSlot,
    parse_request,
)
from edge.core.stations import Stations
from tests.conftest import run

S1 = StationConfig("s1", "一号站", "One", 30.6, 119.6, ("d1",))


def _stations(slots: str = "LLEE") -> Stations:
    st = Stations((S1,), 0.0)
    st.apply_state("d1", 1, 0, slots, 1.0)
    return st


def test_requests_are_checked_before_anything_happens() -> None:
    assert parse_request({"rental_id": "r", "station": "s1", "slot": 2}).slot == 2
    for bad in ({"station": "s1"}, {"rental_id": "r", "station": "s1", "slot": True},
                {"rental_id": "r", "station": "s1", "hold_min": 0},
                {"rental_id": "r", "station": "s1", "hold_min": 61}, ["r"],
                {"rental_id": "r", "station": "s1", "reservation_id": 5}):
        with pytest.raises(Rejected):
            parse_request(bad)


def test_picking_skips_promised_slots_and_says_why_there_is_none() -> None:
    st = _stations("LLEE")
    m = RentalMachine(st)
    assert m.pick("s1", None) == ("d1", 0)
    m.request(RentalRequest("a", "s1", hold_min=1), 40.0)
    assert m.pick("s1", None) == ("d1", 1)
    m.request(RentalRequest("b", "s1"), 40.0)
    for station, slot, reason in (("s1", None, "no_bike"), ("s1", 2, "no_bike"),
                                  ("s9", None, "unknown_station")):
        with pytest.raises(Rejected) as e:
            m.pick(station, slot)
        assert e.value.reason == reason
    st.set_online("d1", False, 2.0)
    with pytest.raises(Rejected) as e:
        m.pick("s1", None)
    assert e.value.reason == "station_offline"


# -- the table, with plain values --------------------------------------------------------
def _row(rid: str, state: str, slot: int | None, deadline: float = 0.0, **more: Any) -> Rental:
    return Rental(rid, "s1", state, "d1" if slot is not None else "", slot, deadline, **more)


def _outcome(rid: str, at: float, ok: bool = False, slot: int | None = 0,
             **more: Any) -> Outcome:
    return Outcome(rid, "s1", ok, at, slot=slot, **more)


def test_a_rent_walks_from_request_to_the_bike_leaving() -> None:
    m = RentalMachine(_stations("LLEE"), timeout_s=60.0)
    assert m.request(RentalRequest("r-1", "s1"), 10.0) == [
        Save(_row("r-1", UNLOCKING, 0, 70.0, created=10.0)),
        Send("r-1", "d1", "unlock", {"slot": 0})]
    assert m.next_deadline() is None  # not while the command is out
    assert m.sent("r-1", None, 11.0) == [
        Answer(_outcome("r-1", 11.0, True, state="unlocked", device="d1"))]
    assert m.next_deadline() == 70.0
    assert m.bike_left("d1", 1, "0B01", 12.0) is None  # another slot: no rental of ours
    assert m.bike_left("d1", 0, "0B00", 12.0) == "r-1"
    rented = _outcome("r-1", 12.0, True, state="rented", device="d1", bike="0B00")
    assert m.completing["r-1"].result == rented
    assert m.completion_stored("r-1", True) == [Ended(rented)]
    assert m.rentals == {} and m.next_deadline() is None


def test_refusals_end_at_once_with_the_reason() -> None:
    m = RentalMachine(_stations("EEEE"))
    for req, err in ((RentalRequest("a", "s1"), "no_bike"),
                     (RentalRequest("b", "s9"), "unknown_station"),
                     (RentalRequest("c", "s1", reservation_id="nope"), "no_reservation")):
        out = Outcome(req.id, req.station, False, 5.0, err=err)
        assert m.request(req, 5.0) == [
            Save(Rental(req.id, req.station, DONE, created=5.0, result=out)), Ended(out),
            Publish(out, f"rental:{req.id}"), Answer(out)]
    assert m.rentals == {}


def test_an_unlock_the_dock_refuses_or_nobody_takes() -> None:
    m = RentalMachine(_stations("LLEE"), timeout_s=60.0)
    m.request(RentalRequest("r-1", "s1", slot=1), 0.0)
    jammed = _outcome("r-1", 1.0, slot=1, err="lock_jammed")
    assert m.sent("r-1", "lock_jammed", 1.0) == [
        Save(_row("r-1", DONE, 1, 60.0, result=jammed)), Ended(jammed),
        Publish(jammed, "rental:r-1"), Answer(jammed)]
    m.request(RentalRequest("r-2", "s1"), 0.0)
    m.sent("r-2", None, 1.0)
    assert m.due(59.0) == []
    late = _outcome("r-2", 60.0, err="not_taken")
    assert m.due(60.0) == [Save(_row("r-2", DONE, 0, 60.0, result=late)), Ended(late),
                           Publish(late, "rental:r-2")]


def test_a_reservation_is_held_taken_relocked_and_unlocked() -> None:
    st = _stations("LLEE")
    m = RentalMachine(st, timeout_s=60.0)
    assert m.request(RentalRequest("h-1", "s1", hold_min=10), 0.0) == [
        Save(_row("h-1", HOLDING, 0, 600.0,
                  notice=_outcome("h-1", 0.0, True, state="reserved", device="d1",
                                  until=600.0))),
        Send("h-1", "d1", "set_slot", {"slot": 0, "enabled": False})]
    notice = m.rentals["h-1"].notice
    assert notice is not None
    assert m.sent("h-1", None, 1.0) == [Publish(notice, "rental:h-1"), Answer(notice)]
    taken = _outcome("h-1", 2.0, True, state="taken", by="r-1")
    assert m.request(RentalRequest("r-1", "s1", reservation_id="h-1"), 2.0) == [
        Save(_row("h-1", DONE, 0, 600.0, notice=notice, result=taken)),
        Send("r-1", "d1", "set_slot", {"slot": 0, "enabled": True})]
    assert m.rentals["r-1"].state == RELEASING and ("d1", 0) in m.busy()
    assert m.sent("r-1", None, 3.0) == [WaitSlot("r-1", "d1", 0, "L", 5.0)]
    assert m.rentals["r-1"].state == RELOCKING and m.pick("s1", None) == ("d1", 1)
    assert m.relocked("r-1", 4.0) == [Save(_row("r-1", UNLOCKING, 0, 64.0, created=2.0)),
                                      Send("r-1", "d1", "unlock", {"slot": 0})]


def test_a_hold_that_runs_out_releases_its_slot_then_ends() -> None:
    m = RentalMachine(_stations("LLEE"))
    m.request(RentalRequest("h-1", "s1", hold_min=1), 0.0)
    m.sent("h-1", None, 0.0)
    assert m.due(60.0) == [Send("h-1", "d1", "set_slot", {"slot": 0, "enabled": True})]
    assert m.rentals["h-1"].state == EXPIRING and m.due(61.0) == []  # not twice
    gone = _outcome("h-1", 62.0, state="expired", err="reservation_expired")
    effects = m.sent("h-1", "dock_unreachable", 62.0)
    assert effects[1:] == [Ended(gone, released=False), Publish(gone, "rental:h-1:expired")]


def test_a_restart_answers_the_claimed_and_gives_the_unlocking_a_grace() -> None:
    m = RentalMachine(_stations("LLEE"), timeout_s=60.0)
    rows = [_row("c", CLAIMED, None), _row("u", UNLOCKING, 0, 100.0),
            _row("h", HOLDING, 1, 9000.0)]
    out = _outcome("c", 1000.0, slot=None, err="edge_restarted")
    assert m.restart(rows, 1000.0) == [Save(_row("c", DONE, None, result=out)), Ended(out),
                                       Publish(out, "rental:c")]
    assert m.rentals["u"].deadline == 1030.0 and m.holding("h") is not None


def test_a_completion_not_stored_leaves_the_rental_unlocking() -> None:
    m = RentalMachine(_stations("LLEE"))
    m.request(RentalRequest("r-1", "s1"), 0.0)
    assert m.bike_left("d1", 0, "0B00", 1.0) == "r-1"  # before the dock's answer
    assert m.completion_stored("r-1", False) == []
    assert m.rentals["r-1"].state == UNLOCKING and m.rentals["r-1"].result is None
    assert m.bike_left("d1", 0, "0B00", 2.0) == "r-1"  # the dock's resend
    assert m.completion_stored("r-1", True)[0] == Ended(
        _outcome("r-1", 2.0, True, state="rented", device="d1", bike="0B00"))
    assert "r-1" in m.rentals  # until the unlock's answer, which still answers the request
    assert m.sent("r-1", None, 3.0) == [
        Answer(_outcome("r-1", 3.0, True, state="unlocked", device="d1"))]
    assert m.rentals == {}


def test_every_move_outside_the_table_raises() -> None:
    states = (CLAIMED, RELEASING, RELOCKING, UNLOCKING, HOLDING, EXPIRING, DONE)
    inputs = {e for _, e in TRANSITIONS}
    m = RentalMachine(_stations())
    for state in states:
        for event in inputs:
            r = _row("x", state, 0)
            if (state, event) in TRANSITIONS:
                m._move(r, event)
                assert r.state == TRANSITIONS[state, event]
            else:
                with pytest.raises(IllegalTransition, match=f"{event} while {state}"):
                    m._move(r, event)
    with pytest.raises(IllegalTransition):  # a public input that would need one
        r = _row("y", HOLDING, 0)
        m.rentals["y"] = r
        m.relocked("y", 0.0)


# Inputs a random run draws from: (what, which rental, a dock's error or none).
_STEP = st_.tuples(st_.sampled_from(["rent", "hold", "take", "answer", "relocked", "left",
                                     "stored", "lost", "tick", "restart"]),
                   st_.integers(0, 3), st_.sampled_from([None, "lock_jammed"]))


@settings(max_examples=300, deadline=None)
@given(st_.lists(_STEP, max_size=40))
def test_any_interleaving_answers_each_request_once_and_ends_each_rental_once(
        steps: list[tuple[str, int, str | None]]) -> None:
    """Whatever order requests, the dock's answers, bikes leaving, stores
    failing, deadlines and restarts come in (only what a real edge can see:
    an answer for a command that is out, a wait for a wait asked for), no move
    is illegal, each request gets one answer, each rental one end, which is the
    last thing published for it, and no slot is promised twice."""
    st = _stations("LLLL")
    m = RentalMachine(st, timeout_s=60.0)
    now = 0.0
    waiting: dict[str, str] = {}  # rental id -> "send" or "wait" the executor is on
    answers: dict[str, int] = {}
    ends: dict[str, int] = {}
    saved: dict[str, Rental] = {}
    held: list[str] = []

    def take(effects: list[Any], rid: str) -> None:
        for e in effects:
            match e:
                case Send(r, _, _, _):
                    waiting[r] = "send"
                case WaitSlot(r, _, _, _, _):
                    waiting[r] = "wait"
                case Answer(o):
                    answers[o.rental_id] = answers.get(o.rental_id, 0) + 1
                case Ended(o):
                    ends[o.rental_id] = ends.get(o.rental_id, 0) + 1
                case Save(row):
                    saved[row.id] = row
                case Publish(o, _) if o.state == "reserved":
                    held.append(o.rental_id)

    for n, (what, k, err) in enumerate(steps):
        now += 7.0
        rid = f"r{n}"
        sending = [r for r, w in waiting.items() if w == "send"]
        if what in ("rent", "hold", "take"):
            req = RentalRequest(rid, "s1", hold_min=1 if what == "hold" else None,
                                reservation_id=held[k % len(held)] if what == "take" and held
                                else None)
            take(m.request(req, now), rid)
        elif what == "answer" and sending:
            r = sending[k % len(sending)]
            del waiting[r]
            take(m.sent(r, err, now), r)
        elif what == "relocked" and "wait" in waiting.values():
            r = next(r for r, w in waiting.items() if w == "wait")
            del waiting[r]
            take(m.relocked(r, now), r)
        elif what in ("left", "stored", "lost"):
            if what == "left":
                m.bike_left("d1", k, "0B", now)
            for r in list(m.completing):
                if what != "lost":  # the event's transaction stores the row done
                    saved[r] = replace(m.completing[r])
                take(m.completion_stored(r, what != "lost"), r)
        elif what == "tick":
            now += 60.0
            take(m.due(now), "")
        elif what == "restart" and not waiting and not m.completing:
            rows = [replace(r) for r in saved.values() if r.state in (CLAIMED, UNLOCKING,
                                                                       HOLDING)]
            m = RentalMachine(st, timeout_s=60.0)
            held = [h for h in held if any(r.id == h for r in rows)]
            take(m.restart(rows, now), "")
        promised = [(r.device, r.slot) for r in m.rentals.values() if r.state in (
            RELEASING, RELOCKING, UNLOCKING, HOLDING, EXPIRING)]
        assert len(promised) == len(set(promised)), "one slot promised twice"
    assert all(n == 1 for n in answers.values()), answers
    assert all(n == 1 for n in ends.values()), ends
    for rid in ends:
        assert saved[rid].state == DONE and saved[rid].result is not None


# -- the executor, with the real store ---------------------------------------------------
class Dock:
    """Stands in for a dock on its link: answers each command as the firmware
    does, in the message model (a real dock needs MicroPython; the end-to-end
    tests run that)."""

    def __init__(self, links: DeviceLinks, refuse: str = "") -> None:
        self.links = links
        self.refuse = refuse
        self.commands: list[dict[str, Any]] = []
        links.heard("d1", ReplyBy(self.reply))

    async def reply(self, msg: dict[str, Any]) -> None:
        self.commands.append(msg)
        self.links.answered(Result("d1", msg["id"], not self.refuse, self.refuse))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _desk(tmp: Path, st: Stations, clock: Clock,
                refuse: str = "") -> tuple[RentalDesk, SqliteStore, Dock]:
    store = SqliteStore(tmp / "edge.db", ("city",))
    await store.open()
    links = DeviceLinks(Metrics())
    dock = Dock(links, refuse)
    desk = RentalDesk(RentalMachine(st, 60.0), store, links, st, Metrics(),
                      lambda r: str(r), clock)
    await desk.resume()
    return desk, store, dock


async def _store_event(desk: RentalDesk, store: SqliteStore, rid: str, slot: int,
                       now: float, seq: int = 1) -> bool:
    """The "rented" event as the ingest loop stores it: the rental's completion in
    the event's own transaction. Returns whether the transaction committed."""
    writer = asyncio.create_task(store.run())
    rec = EventRecord("d1", "e1", seq, "s1", "rented", slot, "0B00", None, now,
                      rental=desk.completion(rid))
    try:
        await store.submit(rec)
        ok = True
    except Exception:
        ok = False
    desk.stored(rid, ok)
    writer.cancel()
    return ok


async def _rental_rows(store: SqliteStore) -> list[str]:
    rows = await store._run(store._query, "SELECT key FROM outbox WHERE kind = 'rental'")
    return [r[0] for r in rows]


def test_a_rental_unlocks_and_ends_when_the_bike_leaves_or_the_deadline_passes(
        tmp_path: Path) -> None:
    async def main() -> None:
        st, clock = _stations("LLEE"), Clock()
        desk, store, dock = await _desk(tmp_path, st, clock)
        got = await desk.rent({"rental_id": "r-1", "station": "s1"})
        assert got.state == "unlocked" and got.slot == 0
        assert dock.commands[-1]["op"] == "unlock"
        assert (await store.rentals_active())[0].state == UNLOCKING
        assert desk.machine.bike_left("d1", 0, "0B00", clock.now) == "r-1"
        assert await _store_event(desk, store, "r-1", 0, clock.now)
        assert await store.rentals_active() == []
        assert await _rental_rows(store) == ["rental:r-1"]  # queued with the event
        again = await desk.rent({"rental_id": "r-1", "station": "s1"})
        assert again.state == "rented" and again.bike == "0B00"
        # Nobody takes the next one: the deadline ends it.
        await desk.rent({"rental_id": "r-2", "station": "s1"})
        clock.now += 61
        await desk._carry_out(desk.machine.due(clock.now))
        assert (await desk.rent({"rental_id": "r-2", "station": "s1"})).err == "not_taken"
        await store.close()
    run(main())


def test_a_refused_unlock_is_the_answer(tmp_path: Path) -> None:
    async def main() -> None:
        desk, store, _ = await _desk(tmp_path, _stations("LLEE"), Clock(), "lock_jammed")
        got = await desk.rent({"rental_id": "r-1", "station": "s1", "slot": 1})
        assert (got.ok, got.err, got.slot) == (False, "lock_jammed", 1)
        await store.close()
    run(main())


def test_a_reservation_survives_an_edge_restart(tmp_path: Path) -> None:
    """Before: the hold lived in a sleeping task; after a restart the slot
    stayed disabled for good and the rental naming it got no_reservation."""
    async def main() -> None:
        st, clock = _stations("LLEE"), Clock()
        desk, store, dock = await _desk(tmp_path, st, clock)
        held = await desk.rent({"rental_id": "h-1", "station": "s1", "hold_min": 10})
        assert held.state == "reserved" and dock.commands[-1]["enabled"] is False
        await store.close()
        # The edge restarts: a new desk on the same database.
        st2 = _stations("BLEE")  # the dock reports the held bike as disabled
        desk2, store2, dock2 = await _desk(tmp_path, st2, clock)
        assert desk2.machine.holding("h-1") is not None
        again = await desk2.rent({"rental_id": "h-1", "station": "s1", "hold_min": 10})
        assert again.state == "reserved"  # a redelivery: the same answer
        st2.apply_state("d1", 1, 1, "LLEE", 2.0)  # released and relocked
        got = await desk2.rent({"rental_id": "r-1", "station": "s1", "reservation_id": "h-1"})
        assert got.state == "unlocked" and got.slot == held.slot
        assert [c["op"] for c in dock2.commands] == ["set_slot", "unlock"]
        assert dock2.commands[0]["enabled"] is True
        await store2.close()
    run(main())


def test_a_held_slot_is_released_when_the_hold_runs_out_after_a_restart(
        tmp_path: Path) -> None:
    async def main() -> None:
        st, clock = _stations("LLEE"), Clock()
        desk, store, _ = await _desk(tmp_path, st, clock)
        await desk.rent({"rental_id": "h-1", "station": "s1", "hold_min": 1})
        await store.close()
        clock.now += 120
        desk2, store2, dock2 = await _desk(tmp_path, st, clock)
        task = asyncio.create_task(desk2.deadlines())
        for _ in range(100):
            if not desk2.machine.active:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        assert dock2.commands[-1] == {**dock2.commands[-1], "op": "set_slot", "enabled": True}
        rows = await store2._run(store2._query, "SELECT state, result FROM rentals")
        assert rows[0][0] == DONE and "reservation_expired" in rows[0][1]
        await store2.close()
    run(main())


def test_a_rental_claimed_but_unfinished_at_a_restart_gets_an_answer(tmp_path: Path) -> None:
    """Before: its row kept result NULL and every redelivery answered
    in_progress for ever."""
    async def main() -> None:
        st, clock = _stations("LLEE"), Clock()
        store = SqliteStore(tmp_path / "edge.db", ("city",))
        await store.open()
        assert await store.rental_claim("r-1", "s1", clock.now) is None  # then the edge died
        assert (await store.rentals_active())[0].state == CLAIMED
        await store.close()
        desk, store2, dock = await _desk(tmp_path, st, clock)
        got = await desk.rent({"rental_id": "r-1", "station": "s1"})
        assert (got.ok, got.err) == (False, "edge_restarted")
        assert dock.commands == []  # nothing was sent for it, nothing is sent now
        await store2.close()
    run(main())


def test_an_unlocking_rental_resumes_and_completes_after_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        st, clock = _stations("LLEE"), Clock()
        desk, store, _ = await _desk(tmp_path, st, clock)
        await desk.rent({"rental_id": "r-1", "station": "s1", "slot": 1})
        await store.close()
        clock.now += 600  # long past its deadline: the dock still has the event to send
        desk2, store2, _ = await _desk(tmp_path, st, clock)
        r = desk2.machine.active["r-1"]
        assert r.state == UNLOCKING and r.deadline > clock.now
        assert desk2.machine.bike_left("d1", 1, "0B01", clock.now) == "r-1"
        assert await _store_event(desk2, store2, "r-1", 1, clock.now)
        got = await desk2.rent({"rental_id": "r-1", "station": "s1"})
        assert got.state == "rented" and got.bike == "0B01"
        assert HOLDING not in {x.state for x in await store2.rentals_active()}
        await store2.close()
    run(main())


def test_a_completion_is_stored_with_its_event_or_not_at_all(tmp_path: Path) -> None:
    """Writing the completion fails (as a full disk fails a write): the event is not
    stored either (the dock keeps it and sends it again), nor the row for the backend;
    the rental is unlocking again, so the resent event completes it, once."""
    async def main() -> None:
        st, clock = _stations("LLEE"), Clock()
        desk, store, _ = await _desk(tmp_path, st, clock)
        await desk.rent({"rental_id": "r-1", "station": "s1"})
        db = store._db
        assert db is not None
        await store._run(db.execute, "CREATE TRIGGER full BEFORE UPDATE ON rentals WHEN "
                         "NEW.state = 'done' BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        assert desk.machine.bike_left("d1", 0, "0B00", clock.now) == "r-1"
        assert not await _store_event(desk, store, "r-1", 0, clock.now)
        assert await store.events() == []  # the event went with it
        assert [r.state for r in await store.rentals_active()] == [UNLOCKING]
        assert desk.machine.active["r-1"].state == UNLOCKING and await _rental_rows(store) == []
        await store._run(db.execute, "DROP TRIGGER full")
        assert desk.machine.bike_left("d1", 0, "0B00", clock.now) == "r-1"  # the resend
        assert await _store_event(desk, store, "r-1", 0, clock.now)
        assert await store.rentals_active() == [] and await _rental_rows(store) == ["rental:r-1"]
        await store.close()
    run(main())


def test_a_malformed_rental_is_answered_to_the_backend_too(tmp_path: Path) -> None:
    async def main() -> None:
        desk, store, dock = await _desk(tmp_path, _stations("LLEE"), Clock())
        writer = asyncio.create_task(store.run())
        got = await desk.rent({"rental_id": "m-1", "station": "s1", "slot": "two"})
        assert (got.ok, got.err) == (False, "malformed")
        for _ in range(100):
            if await _rental_rows(store):
                break
            await asyncio.sleep(0.01)
        assert await _rental_rows(store) == ["rental:m-1"] and dock.commands == []
        writer.cancel()
        await store.close()
    run(main())


def test_the_deadline_task_counts_a_hold_once_its_dock_has_answered(tmp_path: Path) -> None:
    """The deadline task sleeps while a hold's command is out (it does not
    count yet); the dock's answer must wake it, or the hold never expires."""
    async def main() -> None:
        st, clock = _stations("LLEE"), Clock()
        desk, store, dock = await _desk(tmp_path, st, clock)
        task = asyncio.create_task(desk.deadlines())
        await asyncio.sleep(0)
        answer = dock.reply

        async def slow_dock(msg: dict[str, Any]) -> None:
            clock.now += 120  # the hold runs out while the dock answers
            await answer(msg)
        dock.links.heard("d1", ReplyBy(slow_dock))
        await desk.rent({"rental_id": "h-1", "station": "s1", "hold_min": 1})
        async with asyncio.timeout(5):
            while desk.machine.active:
                await asyncio.sleep(0.01)
        task.cancel()
        assert dock.commands[-1]["enabled"] is True  # released
        await store.close()
    run(main())
