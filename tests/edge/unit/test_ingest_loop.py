"""The ingest loop (edge/app/ingest_loop.py) carrying out the ingest rules'
effects, with plain values: a store whose commits the test decides, the real
door to the devices (edge/app/links.py), a recording link. What it must hold:
an ack leaves only after its event's commit (and never for an event that was
not stored), a duplicate is acked again, a full disk raises the alarm and
clears it, a rental's completion rides in its event's transaction, and a bad
message is counted without stopping the loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from edge.app.ingest_loop import IngestLoop
from edge.app.links import DeviceLinks
from edge.core.ingest import Ingest
from edge.core.messages import Event, Hello, State
from edge.core.metrics import Metrics
from edge.core.ports import Inbound, ReplyBy
from edge.core.records import EventRecord, RentalCompletion, StoreItem
from edge.core.registry import Registry
from edge.core.rentals import RentalMachine, RentalRequest
from edge.core.stations import Stations
from tests.conftest import run
from tests.edge.unit.test_ingest import HELLO, S1


class Store:
    """Holds each write's future: the test commits or fails it. A batch's
    transaction commits once all its writes have, and fails with any of them."""

    def __init__(self) -> None:
        self.items: list[tuple[StoreItem, asyncio.Future[bool]]] = []
        self.batches: list[list[StoreItem]] = []

    def submit(self, item: StoreItem) -> asyncio.Future[bool]:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.items.append((item, fut))
        return fut

    def submit_many(self, items: list[StoreItem]) -> asyncio.Future[list[bool]]:
        self.batches.append(list(items))
        return asyncio.gather(*(self.submit(i) for i in items))

    def events(self) -> list[tuple[EventRecord, asyncio.Future[bool]]]:
        return [(i, f) for i, f in self.items if isinstance(i, EventRecord)]


class Desk:
    """The rental desk as the loop sees it: completions out, stored in."""

    def __init__(self, machine: RentalMachine) -> None:
        self.machine = machine
        self.told: list[tuple[str, bool]] = []

    def completion(self, rental_id: str) -> RentalCompletion | None:
        return RentalCompletion(rental_id, "s1", "{}", None) \
            if rental_id in self.machine.completing else None

    def stored(self, rental_id: str, ok: bool) -> None:
        self.told.append((rental_id, ok))
        self.machine.completion_stored(rental_id, ok)


def _loop() -> tuple[IngestLoop, Store, Desk, list[dict[str, Any]], Metrics]:
    stations = Stations((S1,), 0.0)
    machine = RentalMachine(stations)
    metrics = Metrics()
    store, desk = Store(), Desk(machine)
    loop = IngestLoop(Ingest(Registry({"d1": "s1"}, 90.0, ()), stations, machine, metrics),
                      store, DeviceLinks(metrics), metrics, None,
                      on_counter_floor=lambda dev, ctr: True, on_hello=lambda h: None,
                      on_lookup=lambda dev, look: None, rentals=desk)
    sent: list[dict[str, Any]] = []

    async def reply(msg: dict[str, Any]) -> None:
        sent.append(msg)
    REPLIES[id(loop)] = ReplyBy(reply)
    return loop, store, desk, sent, metrics


REPLIES: dict[int, ReplyBy] = {}  # each loop's link to d1, as its transport would hand it


def _in(loop: IngestLoop, msg: Any, at: float, device: str = "d1") -> Inbound:
    return Inbound(device, msg, REPLIES[id(loop)], "mqtt", at)


@contextlib.asynccontextmanager
async def _running(loop: IngestLoop) -> AsyncIterator[None]:
    """The loop's dispatcher and the door's sender, as the runtime runs them."""
    tasks = [asyncio.create_task(loop.dispatch()), asyncio.create_task(loop.links.run())]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def _one_by_one(loop: IngestLoop, *items: Inbound) -> None:
    """Each message handled alone, so each is a batch (a transaction) of its own."""
    for i in items:
        await loop.inbound.put(i)
        await _settle()


def _ops(sent: list[dict[str, Any]]) -> list[str]:
    return [m.get("op") or m.get("t", "?") for m in sent]


def test_an_ack_leaves_only_after_its_events_commit_and_never_without_it() -> None:
    async def main() -> None:
        loop, store, _, sent, metrics = _loop()
        async with _running(loop):
            await _one_by_one(loop, _in(loop, HELLO, 10.0),
                              _in(loop, Event("d1", "e1", 1, "returned", 0, "0B01"), 11.0),
                              _in(loop, Event("d1", "e1", 2, "returned", 1, "0B02"), 11.5))
            await _settle()
            before = list(sent)
            assert not any(m.get("t") == "ack" for m in before)  # nothing committed yet
            (_, first), (_, second) = store.events()
            first.set_exception(OSError(28, "database or disk is full"))
            await _settle()
            assert loop.alarms.get("disk_full") == 11.0 and metrics.get("store.full") == 1
            assert not any(m.get("t") == "ack" for m in sent)  # not the unstored one
            second.set_result(True)
            await _settle()
            acks = [m for m in sent if m.get("t") == "ack"]
            assert [(a["epoch"], a["seq"]) for a in acks] == [("e1", 2)]
            assert "disk_full" not in loop.alarms  # a write went through: room again
            # The dock sends the first again; stored now, acked, and the alarm clears.
            await loop.inbound.put(_in(loop, Event("d1", "e1", 1, "returned", 0, "0B01"), 12.0))
            await _settle()
            store.events()[-1][1].set_result(True)
            await _settle()
            assert [a["seq"] for a in sent if a.get("t") == "ack"] == [2, 1]
            assert metrics.get("events.stored") == 2
            # A duplicate (stored before) is acked again, counted as such.
            await loop.inbound.put(_in(loop, Event("d1", "e1", 2, "returned", 1, "0B02"), 13.0))
            await _settle()
            store.events()[-1][1].set_result(False)
            await _settle()
            assert [a["seq"] for a in sent if a.get("t") == "ack"] == [2, 1, 2]
            assert metrics.get("events.duplicate") == 1
    run(main())


def test_a_rentals_completion_rides_in_its_events_transaction() -> None:
    async def main() -> None:
        loop, store, desk, _, _ = _loop()
        async with _running(loop):
            await loop.inbound.put(_in(loop, HELLO, 10.0))
            await loop.inbound.put(_in(loop, State("d1", 2, 0, "LLLL"), 10.5))
            await _settle()
            desk.machine.request(RentalRequest("r-1", "s1", slot=3), 11.0)
            desk.machine.sent("r-1", None, 11.0)
            await loop.inbound.put(_in(loop, Event("d1", "e1", 1, "rented", 3, "0B03"), 12.0))
            await _settle()
            rec, fut = store.events()[-1]
            assert rec.rental is not None and rec.rental.id == "r-1"
            assert desk.told == []  # nothing said until the transaction ends
            fut.set_exception(OSError(28, "database or disk is full"))
            await _settle()
            assert desk.told == [("r-1", False)]
            assert desk.machine.rentals["r-1"].state == "unlocking"  # the resend completes it
    run(main())


def test_a_bad_message_is_counted_and_the_loop_goes_on() -> None:
    async def main() -> None:
        loop, store, _, _, metrics = _loop()
        async with _running(loop):
            await loop.inbound.put(_in(loop, HELLO, 10.0))
            stranger = _in(loop, Hello("d9", "dock", "1.0", 4, 1, "e9", "", 0), 10.5, "d9")
            await loop.inbound.put(stranger)
            await loop.inbound.put(_in(loop, Event("d1", "e1", 1, "returned", 0, "0B01"), 11.0))
            await _settle()
            assert metrics.get("rx.rejected", "unregistered") == 1
            assert len(store.events()) == 1 and loop.handled == 3
    run(main())


def test_acks_leave_in_the_order_the_events_came_whatever_order_they_commit() -> None:
    async def main() -> None:
        loop, store, _, sent, _ = _loop()
        async with _running(loop):
            await _one_by_one(loop, _in(loop, HELLO, 10.0), *(
                _in(loop, Event("d1", "e1", seq, "returned", 0, "0B"), 11.0) for seq in (1, 2, 3)))
            await _settle()
            futs = [f for _, f in store.events()]
            futs[2].set_result(True)
            futs[1].set_result(True)
            await _settle()
            assert [m["seq"] for m in sent if m.get("t") == "ack"] == []  # the first holds them
            futs[0].set_result(True)
            await _settle()
            assert [m["seq"] for m in sent if m.get("t") == "ack"] == [1, 2, 3]
    run(main())


def test_the_broker_lets_a_message_go_only_once_the_edge_is_done_with_it() -> None:
    """Inbound.done (an MQTT transport's PUBACK): an event's after its commit is
    known, stored or refused (a refused one stays on its dock's flash); a hello
    or a state once handled; a message the rules reject, too. Once each."""
    async def main() -> None:
        loop, store, _, _, _ = _loop()
        done: list[str] = []

        def item(name: str, msg: Any, at: float) -> Inbound:
            i = _in(loop, msg, at)
            return Inbound(i.device, i.msg, i.reply, i.transport, i.received,
                           lambda: done.append(name))
        async with _running(loop):
            await _one_by_one(loop, item("hello", HELLO, 10.0),
                              item("ev1", Event("d1", "e1", 1, "returned", 0, "0B01"), 11),
                              item("ev2", Event("d1", "e1", 2, "returned", 1, "0B02"), 12),
                              item("stranger", Event("d9", "e", 1, "returned", 0, "0B"), 13))
            await _settle()
            assert done == ["hello", "stranger"]  # the events wait for their commits
            (_, first), (_, second) = store.events()
            second.set_result(True)
            await _settle()
            assert done == ["hello", "stranger", "ev2"]
            first.set_exception(OSError(28, "database or disk is full"))
            await _settle()
            assert done == ["hello", "stranger", "ev2", "ev1"]
    run(main())


def test_what_comes_together_commits_together_and_its_acks_wait_for_that_commit() -> None:
    """A backlog: the messages waiting when the loop turns are one transaction.
    Its acks all leave once it commits, in the order the events came, and none
    if it fails; the broker may let each go either way, once."""
    async def main(outcome: str) -> None:
        loop, store, _, sent, metrics = _loop()
        done: list[int] = []

        def event(seq: int) -> Inbound:
            i = _in(loop, Event("d1", "e1", seq, "returned", seq % 4, "0B"), 11.0)
            return Inbound(i.device, i.msg, i.reply, i.transport, i.received,
                           lambda: done.append(seq))
        async with _running(loop):
            await _one_by_one(loop, _in(loop, HELLO, 10.0))
            for seq in range(1, 6):
                loop.inbound.put_nowait(event(seq))
            loop.inbound.put_nowait(_in(loop, State("d1", 2, 1, "LLEE"), 11.5))
            await _settle()
            assert [type(i).__name__ for i in store.batches[-1]] == \
                ["EventRecord"] * 5 + ["StateRecord"]
            assert done == [] and not [m for m in sent if m.get("t") == "ack"]
            futs = [f for i, f in store.items if i in store.batches[-1]]
            for f in futs[:-1]:
                f.set_result(True)
            await _settle()
            assert done == []  # one write still open: the transaction has not ended
            if outcome == "committed":
                futs[-1].set_result(True)
            else:
                futs[-1].set_exception(OSError(28, "database or disk is full"))
            await _settle()
            acks = [m["seq"] for m in sent if m.get("t") == "ack"]
            assert done == [1, 2, 3, 4, 5]
            if outcome == "committed":
                assert acks == [1, 2, 3, 4, 5] and metrics.get("events.stored") == 5
            else:
                assert acks == [] and metrics.get("store.error") == 5
                assert loop.alarms.get("disk_full") == 11.0
    run(main("committed"))
    run(main("failed"))
