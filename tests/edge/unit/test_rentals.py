"""Rentals as a state machine (edge/core/rentals.py) and as the edge carries
them out (edge/app/rentals.py), with plain values: a dock stand-in that
answers commands in the message model, the real SQLite store in a temporary
folder, and a clock the test moves. Includes the two states that used to stick
after an edge restart (a held reservation forgotten; a claimed rental
answering `in_progress` for ever)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

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
    HOLDING,
    UNLOCKING,
    Rental,
    RentalBook,
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
    book = RentalBook(st, "anji")
    assert book.pick("s1", None) == ("d1", 0)
    book.hold(Rental("a", "s1"), "d1", 0, 100.0)
    assert book.pick("s1", None) == ("d1", 1)
    book.unlocking(Rental("b", "s1"), "d1", 1, 100.0)
    for station, slot, reason in (("s1", None, "no_bike"), ("s1", 2, "no_bike"),
                                  ("s9", None, "unknown_station")):
        with pytest.raises(Rejected) as e:
            book.pick(station, slot)
        assert e.value.reason == reason
    st.set_online("d1", False, 2.0)
    with pytest.raises(Rejected) as e:
        book.pick("s1", None)
    assert e.value.reason == "station_offline"
    assert [r.id for r in book.due(100.0)] == ["a", "b"] and book.next_deadline() == 100.0


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
    desk = RentalDesk(RentalBook(st, "anji"), store, links, st, Metrics(), 60.0,
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
        assert got["state"] == "unlocked" and got["slot"] == 0
        assert dock.commands[-1]["op"] == "unlock"
        assert (await store.rentals_active())[0].state == UNLOCKING
        assert desk.book.bike_left("d1", 0, "0B00", clock.now) == "r-1"
        assert await _store_event(desk, store, "r-1", 0, clock.now)
        assert await store.rentals_active() == []
        assert await _rental_rows(store) == ["rental:r-1"]  # queued with the event
        again = await desk.rent({"rental_id": "r-1", "station": "s1"})
        assert again["state"] == "rented" and again["bike"] == "0B00"
        # Nobody takes the next one: the deadline ends it.
        await desk.rent({"rental_id": "r-2", "station": "s1"})
        clock.now += 61
        for r in desk.book.due(clock.now):
            await desk._finish(r, desk._result(r, False, err="not_taken"))
        assert (await desk.rent({"rental_id": "r-2", "station": "s1"}))["err"] == "not_taken"
        await store.close()
    run(main())


def test_a_refused_unlock_is_the_answer(tmp_path: Path) -> None:
    async def main() -> None:
        desk, store, _ = await _desk(tmp_path, _stations("LLEE"), Clock(), "lock_jammed")
        got = await desk.rent({"rental_id": "r-1", "station": "s1", "slot": 1})
        assert (got["ok"], got["err"], got["slot"]) == (False, "lock_jammed", 1)
        await store.close()
    run(main())


def test_a_reservation_survives_an_edge_restart(tmp_path: Path) -> None:
    """Before: the hold lived in a sleeping task; after a restart the slot
    stayed disabled for good and the rental naming it got no_reservation."""
    async def main() -> None:
        st, clock = _stations("LLEE"), Clock()
        desk, store, dock = await _desk(tmp_path, st, clock)
        held = await desk.rent({"rental_id": "h-1", "station": "s1", "hold_min": 10})
        assert held["state"] == "reserved" and dock.commands[-1]["enabled"] is False
        await store.close()
        # The edge restarts: a new desk on the same database.
        st2 = _stations("BLEE")  # the dock reports the held bike as disabled
        desk2, store2, dock2 = await _desk(tmp_path, st2, clock)
        assert desk2.book.holding("h-1") is not None
        again = await desk2.rent({"rental_id": "h-1", "station": "s1", "hold_min": 10})
        assert again["state"] == "reserved"  # a redelivery: the same answer
        st2.apply_state("d1", 1, 1, "LLEE", 2.0)  # released and relocked
        got = await desk2.rent({"rental_id": "r-1", "station": "s1", "reservation_id": "h-1"})
        assert got["state"] == "unlocked" and got["slot"] == held["slot"]
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
            if not desk2.book.active:
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
        assert (got["ok"], got["err"]) == (False, "edge_restarted")
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
        r = desk2.book.active["r-1"]
        assert r.state == UNLOCKING and r.deadline > clock.now
        assert desk2.book.bike_left("d1", 1, "0B01", clock.now) == "r-1"
        assert await _store_event(desk2, store2, "r-1", 1, clock.now)
        got = await desk2.rent({"rental_id": "r-1", "station": "s1"})
        assert got["state"] == "rented" and got["bike"] == "0B01"
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
        assert desk.book.bike_left("d1", 0, "0B00", clock.now) == "r-1"
        assert not await _store_event(desk, store, "r-1", 0, clock.now)
        assert await store.events() == []  # the event went with it
        assert [r.state for r in await store.rentals_active()] == [UNLOCKING]
        assert desk.book.active["r-1"].state == UNLOCKING and await _rental_rows(store) == []
        await store._run(db.execute, "DROP TRIGGER full")
        assert desk.book.bike_left("d1", 0, "0B00", clock.now) == "r-1"  # the resend
        assert await _store_event(desk, store, "r-1", 0, clock.now)
        assert await store.rentals_active() == [] and await _rental_rows(store) == ["rental:r-1"]
        await store.close()
    run(main())


def test_a_malformed_rental_is_answered_to_the_backend_too(tmp_path: Path) -> None:
    async def main() -> None:
        desk, store, dock = await _desk(tmp_path, _stations("LLEE"), Clock())
        writer = asyncio.create_task(store.run())
        got = await desk.rent({"rental_id": "m-1", "station": "s1", "slot": "two"})
        assert (got["ok"], got["err"]) == (False, "malformed")
        for _ in range(100):
            if await _rental_rows(store):
                break
            await asyncio.sleep(0.01)
        assert await _rental_rows(store) == ["rental:m-1"] and dock.commands == []
        writer.cancel()
        await store.close()
    run(main())
