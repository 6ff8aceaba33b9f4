"""Whoever holds one dock holds only that dock (docs/security.md, "the holder of a device"):
whatever device A seals (hellos and refusals with any counter floor, results with any id),
what device B accepts does not change: the counters on B's commands, B's pending commands
and their results. Stated as properties over any sequence, with the edge's real key store
and device links (no processes: plain values)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from wire import auth, message

from edge.adapters.device_keys import DeviceKeys, dump_devices, write_private
from edge.app.links import DeviceLinks
from edge.core.messages import Result
from edge.core.metrics import Metrics

WIRE_INTS = st.integers(min_value=-(2 ** 53) + 1, max_value=2 ** 53 - 1)
KEYS = {"dock-a": "a1" * 32, "dock-b": "b2" * 32}
NOW = 1_796_000_000.0  # a fixed clock: both runs below start from the same counter


def _keys(tmp: Any) -> DeviceKeys:
    path = tmp / "device-keys.toml"
    if not path.exists():
        write_private(path, dump_devices({d: {"command_key": k} for d, k in KEYS.items()}))
    counter = path.with_name(path.name + ".counter")
    counter.unlink(missing_ok=True)
    return DeviceKeys(path, clock=lambda: NOW)


def _ctr(keys: DeviceKeys, dev: str) -> int:
    sealed = keys.seal(dev, {"t": "cmd", "id": 1, "op": "unlock", "slot": 0})
    assert auth.verify(auth.Key(bytes.fromhex(KEYS[dev])), auth.DOWN, sealed)
    ctr: int = message.decode(sealed)["ctr"]
    return ctr


# One step: A claims a floor (its hello or a stale_ctr refusal), or the edge commands A, or
# commands B, or B honestly reports the last counter it accepted (after a reboot, its
# reserved window of 64 on top).
STEPS = st.lists(st.one_of(
    st.tuples(st.just("floor_a"), WIRE_INTS),
    st.tuples(st.just("cmd_a"), st.just(0)),
    st.tuples(st.just("cmd_b"), st.just(0)),
    st.tuples(st.just("b_reboots"), st.integers(0, 64)),
), max_size=40)


def _run(tmp: Any, steps: list[tuple[str, int]], with_a_floors: bool) -> tuple[list[int],
                                                                              list[int]]:
    keys = _keys(tmp)
    b_sent: list[int] = []
    a_sent: list[int] = []
    b_accepted = 0
    for kind, value in steps:
        if kind == "floor_a" and with_a_floors:
            keys.device_floor("dock-a", value)
        elif kind == "cmd_a":
            a_sent.append(_ctr(keys, "dock-a"))
        elif kind == "cmd_b":
            n = _ctr(keys, "dock-b")
            b_sent.append(n)
            b_accepted = n
        elif kind == "b_reboots":
            keys.device_floor("dock-b", b_accepted + value)
            b_accepted += value
    return a_sent, b_sent


@settings(max_examples=300, deadline=None)
@given(steps=STEPS)
def test_no_floor_a_device_claims_moves_another_devices_counters(tmp_path_factory: Any,
                                                                  steps: list[tuple[str, int]]
                                                                  ) -> None:
    tmp = tmp_path_factory.mktemp("keys")
    _, b_alone = _run(tmp, steps, with_a_floors=False)
    a_sent, b_with_a = _run(tmp, steps, with_a_floors=True)
    # B's commands carry the same numbers whatever A claimed, always rising.
    assert b_with_a == b_alone
    assert all(x < y for x, y in itertools.pairwise(b_with_a))
    # No counter, A's included, ever nears what the wire can carry.
    assert all(n < 2 ** 52 for n in a_sent + b_with_a)


@settings(max_examples=200, deadline=None)
@given(floor=WIRE_INTS)
def test_a_floor_beyond_anything_issued_is_refused_and_a_believable_one_is_obeyed(
        tmp_path_factory: Any, floor: int) -> None:
    keys = _keys(tmp_path_factory.mktemp("keys"))
    first = _ctr(keys, "dock-a")
    believed = keys.device_floor("dock-a", floor)
    after = _ctr(keys, "dock-a")
    assert believed == (0 <= floor < int(NOW * 1000) + 10_000_000 + 1)  # FLOOR_SLACK
    assert after > first
    if believed:
        assert after > floor  # numbered above what the device has accepted
    else:
        assert after == first + 1  # a refused floor changes nothing


RESULTS = st.lists(st.tuples(st.integers(0, 2 ** 30), st.booleans()), max_size=30)


@settings(max_examples=200, deadline=None)
@given(foreign=RESULTS)
def test_results_sealed_by_one_device_never_settle_anothers_command(
        foreign: list[tuple[int, bool]]) -> None:
    """dock-a answers with any ids, B's own among them: B's pending unlock waits for B."""

    async def main() -> None:
        links = DeviceLinks(Metrics())
        sent: list[dict[str, Any]] = []

        async def to_b(data: dict[str, Any]) -> None:
            sent.append(data)

        links.heard("dock-b", to_b)
        pending = asyncio.create_task(links.command("dock-b", "unlock", wait_s=5, slot=2))
        while not sent:
            await asyncio.sleep(0)
        cid = sent[0]["id"]
        for rid, ok in [*foreign, (cid, True), (cid, False)]:
            links.answered(Result("dock-a", rid, ok, "forged"))
        await asyncio.sleep(0)
        assert not pending.done()
        assert links.metrics.get("commands.unmatched_result") == len(foreign) + 2
        links.answered(Result("dock-b", cid, True))
        res = await pending
        assert res.dev == "dock-b" and res.ok and res.err == ""
        assert 0 < cid < 2 ** 30

    asyncio.run(main())


def test_command_ids_are_not_sequential() -> None:
    links = DeviceLinks(Metrics())
    ids = [links.new_command("unlock", "dock-a").id for _ in range(50)]
    assert len(set(ids)) == 50
    steps = {b - a for a, b in itertools.pairwise(ids)}
    assert len(steps) > 40  # not a counter a neighbour could guess from one id


# -- a dock's clock: what the edge vouches for ----------------------------------------
@settings(max_examples=300, deadline=None)
@given(stamps=st.lists(st.tuples(st.integers(0, 4_000_000_000), st.floats(0, 30)),
                       min_size=1, max_size=30))
def test_event_times_never_run_ahead_of_the_edge_nor_back_on_a_device(
        stamps: list[tuple[int, float]]) -> None:
    """Whatever a dock stamps (its clock set back by a replayed `time`, or forward), the
    time sent to the backend is never after the event arrived, never before that device's
    previous event by more than the tolerance, and marked when it is the edge's bound."""
    from edge.core.ingest import AT_AHEAD_S, AT_BEHIND_S, _when
    from edge.core.registry import Device

    dev = Device("dock-a", "s1")
    received = 1_796_000_000.0
    previous = 0.0
    for at, gap in stamps:
        received += gap
        happened, corrected = _when(dev, at, received)
        assert happened is not None
        assert happened <= received + AT_AHEAD_S
        assert happened >= previous - AT_BEHIND_S
        assert corrected == (happened != float(at))
        previous = max(previous, happened)


# -- the ingest rules: whatever dock-a sends, only dock-a and its station move -----------
def _two_docks() -> Any:
    from edge.config import StationConfig
    from edge.core.ingest import Ingest
    from edge.core.registry import Registry
    from edge.core.rentals import RentalMachine
    from edge.core.stations import Stations

    s1 = StationConfig("s1", "一号站", "One", 30.6, 119.6, ("dock-a",))
    s2 = StationConfig("s2", "二号站", "Two", 30.7, 119.7, ("dock-b",))
    stations = Stations((s1, s2), 0.0)
    return Ingest(Registry({"dock-a": "s1", "dock-b": "s2"}, 90.0, ()), stations,
                  RentalMachine(stations), Metrics())


_names = st.sampled_from(["dock-a", "dock-b", "s1", "s2", "x"])
_ints = st.integers(-5, 2 ** 53 - 1)
MESSAGES = st.one_of(
    st.builds(lambda dev, boot, epoch, ctr: ("Hello", dev, boot, epoch, ctr), _names, _ints,
              st.sampled_from(["e1", "e2"]), st.none() | _ints),
    st.builds(lambda dev, boot, n, slots: ("State", dev, boot, n, slots), _names, _ints, _ints,
              st.text("LEXBUFD", max_size=8)),
    st.builds(lambda dev, seq, ev, slot, at: ("Event", dev, seq, ev, slot, at), _names, _ints,
              st.sampled_from(["rented", "returned", "fault"]), st.integers(-1, 12),
              st.none() | _ints),
    st.builds(lambda dev, rid, ok, ctr: ("Result", dev, rid, ok, ctr), _names, _ints,
              st.booleans(), st.none() | _ints),
    st.builds(lambda dev, online, boot: ("Status", dev, online, boot), _names, st.booleans(),
              st.none() | _ints),
)


def _message(spec: tuple[Any, ...]) -> Any:
    from edge.core.messages import Event, Hello, Result, State, Status

    kind, dev, *rest = spec
    if kind == "Hello":
        boot, epoch, ctr = rest
        return Hello(dev, "dock", "1.0", 12, boot, epoch, "", ctr)
    if kind == "State":
        return State(dev, *rest)
    if kind == "Event":
        seq, ev, slot, at = rest
        return Event(dev, "e1", seq, ev, slot, "0B01", None, at)
    if kind == "Result":
        rid, ok, ctr = rest
        return Result(dev, rid, ok, "stale_ctr" if ctr is not None else "", None, ctr)
    online, boot = rest
    return Status(dev, online, boot)


@settings(max_examples=300, deadline=None)
@given(before=st.lists(MESSAGES, max_size=5), attack=st.lists(MESSAGES, max_size=40))
def test_no_message_from_one_dock_changes_another_dock(before: list[tuple[Any, ...]],
                                                       attack: list[tuple[Any, ...]]) -> None:
    """dock-b is heard, then anything at all arrives on dock-a's authenticated link (its
    own key sealed it; the link names it dock-a). The effects concern dock-a and its
    station only; dock-b's registry entry and station stay exactly as they were."""
    import copy
    import dataclasses

    from edge.core.errors import Rejected
    from edge.core.ingest import (
        AskHello,
        Booted,
        CommandAnswered,
        CounterFloor,
        LookupAsked,
        Reachable,
        StationChanged,
        StoreEvent,
        StoreState,
        SyncClock,
    )
    from edge.core.messages import Hello, State

    ing = _two_docks()
    ing.handle("dock-b", "mqtt", 5.0, Hello("dock-b", "dock", "1.0", 12, 3, "eb", "", 99))
    ing.handle("dock-b", "mqtt", 6.0, State("dock-b", 3, 1, "LLLLEEEEEEEE"))
    for spec in before:
        try:
            ing.handle("dock-a", "mqtt", 7.0, _message(spec))
        except Rejected:
            pass
    b_device = copy.deepcopy(dataclasses.asdict(ing.registry.devices["dock-b"]))
    b_station = next(s for s in ing.stations.statuses() if s.station_id == "s2")
    for i, spec in enumerate(attack):
        try:
            effects = ing.handle("dock-a", "mqtt", 10.0 + i, _message(spec))
        except Rejected:
            continue
        for e in effects:
            if isinstance(e, StoreEvent):
                assert e.record.device == "dock-a" and e.record.station == "s1"
            elif isinstance(e, StoreState):
                assert e.record.device == "dock-a"
            elif isinstance(e, StationChanged):
                assert e.station == "s1"
            elif isinstance(e, CommandAnswered):
                assert e.result.dev == "dock-a"
            elif isinstance(e, Booted):
                assert e.hello.dev == "dock-a"
            else:
                assert isinstance(e, Reachable | AskHello | CounterFloor | SyncClock
                                  | LookupAsked)
                assert e.device == "dock-a", e
    assert dataclasses.asdict(ing.registry.devices["dock-b"]) == b_device
    assert next(s for s in ing.stations.statuses() if s.station_id == "s2") == b_station


_DOOR_OPS = st.lists(st.tuples(st.sampled_from(["dock-a", "dock-b"]),
                               st.sampled_from(["post", "gated", "refused", "send"])),
                     max_size=30)


@given(_DOOR_OPS)
@settings(max_examples=60, deadline=None)
def test_the_door_sends_each_devices_messages_on_its_own_link_only(
        ops: list[tuple[str, str]]) -> None:
    """Whatever is queued or sent for one device (gated, refused, at once) leaves only
    on that device's link, in the order given, and never holds back the other's."""
    import asyncio

    from edge.app.links import DeviceLinks
    from edge.core.messages import ClockSync
    from edge.core.ports import ReplyBy

    async def main() -> None:
        links = DeviceLinks(Metrics())
        got: dict[str, list[int]] = {"dock-a": [], "dock-b": []}

        def link(dev: str) -> ReplyBy:
            async def send(msg: dict[str, Any]) -> None:
                got[dev].append(msg["now"])
            return ReplyBy(send, blocks=dev == "dock-b")

        for dev in got:
            links.heard(dev, link(dev))
        want: dict[str, list[int]] = {"dock-a": [], "dock-b": []}

        def opened(ok: bool) -> asyncio.Future[bool]:
            gate: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            gate.set_result(ok)
            return gate

        sender = asyncio.create_task(links.run())
        for n, (dev, how) in enumerate(ops):
            if how == "send":
                await links.send(dev, ClockSync(n))
            else:
                links.post(dev, ClockSync(n), gate=None if how == "post" else opened(how == "gated"))
            if how != "refused":
                want[dev].append(n)
        await links.drained(5.0)
        for _ in range(3):
            await asyncio.sleep(0)  # a blocking link's writes run in tasks of their own
        sender.cancel()
        assert got == want
    asyncio.run(main())
