"""The check every device message gets (edge/adapters/transports/device_wire.py),
in the edge's process and in the decoding worker: the same verdicts both
ways, whatever the bytes; a message sealed with one device's key is never
believed as another's; the worker answers in order, and when it dies the
transport starts another and the broker sends again what it held, so nothing
is lost (a real Mosquitto, a real worker process)."""

from __future__ import annotations

import asyncio
import marshal
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire import auth, kiosk_messages, message  # noqa: F401 (the kiosk types)

from edge.adapters.transports import device_wire
from edge.adapters.transports.mqtt import MqttTransport
from edge.config import MqttConfig
from edge.core import messages
from edge.core.metrics import Metrics
from tests.conftest import broker_for_dock_a, needs_mosquitto, run, until


def _sealed(key: bytes, msg: dict[str, Any]) -> bytes:
    return bytes(auth.seal(auth.Key(key), auth.UP, message.encode(msg)))


class DockAKeys:
    """The edge's keys as the MQTT transport uses them: dock-a's key, and no other."""

    def __init__(self, key: bytes, worker: bool = True) -> None:
        self.key, self.worker = key, worker

    def seal(self, dev: str, msg: dict[str, Any]) -> bytes:
        return device_wire.seal(auth.Key(self.key), msg)

    def verify(self, dev: str, data: bytes) -> bool | None:
        raise AssertionError("the MQTT transport checks with command_key")

    def command_key(self, dev: str) -> bytes | None:
        return self.key if dev == "dock-a" else None

    def to_seal(self, dev: str, msg: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        assert self.worker, "no worker: sealed in the edge's process"
        return self.key, msg


def _event(dev: str, seq: int) -> dict[str, Any]:
    return {"t": "ev", "dev": dev, "epoch": "e1", "seq": seq, "ev": "returned",
            "slot": seq % 12, "bike": f"0B{seq:08X}"}


MESSAGES = st.one_of(
    st.builds(lambda d, s: _event(d, s), st.just("dock-a"), st.integers(0, 1 << 40)),
    st.builds(lambda n, slots: {"t": "state", "dev": "dock-a", "boot": 2, "n": n,
                                "slots": slots},
              st.integers(0, 1000), st.text("ELUFXDB", min_size=1, max_size=24)),
    st.builds(lambda i, ok: {"t": "res", "dev": "dock-a", "id": i, "ok": ok},
              st.integers(1, 1 << 30), st.booleans()),
    st.just({"t": "hello", "dev": "dock-a", "kind": "dock", "fw": "1.0", "slots": 12,
             "boot": 3, "epoch": "e1", "ctr": 7}),
)


@given(MESSAGES, st.binary(min_size=16, max_size=64))
def test_a_sealed_message_is_believed_typed_as_the_codec_types_it(
        msg: dict[str, Any], key: bytes) -> None:
    data = _sealed(key, msg)
    checked = device_wire.check(msg["t"], auth.Key(key), data)
    # What crosses the pipe from the worker is plain values, and comes back the same.
    checked = marshal.loads(marshal.dumps(checked))
    assert checked[0] is True
    assert device_wire.typed(checked) == messages.decode(data)


@given(MESSAGES, st.binary(min_size=16, max_size=64), st.binary(min_size=16, max_size=64),
       st.sampled_from(["dock-b", "kiosk-1", "dock-a2"]))
def test_what_one_devices_key_seals_is_never_believed_as_anothers(
        msg: dict[str, Any], key_a: bytes, key_b: bytes, other: str) -> None:
    """A dock someone opened has its own key: whatever it seals and wherever it
    sends it, checked with another device's key it is dropped (bad_mac)."""
    if key_a == key_b:
        return
    forged = _sealed(key_a, {**msg, "dev": other})
    ring = device_wire.KeyRing()  # as the wire worker keeps keys: key_a's made ready first
    assert ring(key_a) is not ring(key_b)
    for key in (auth.Key(key_b), ring(key_b)):
        assert device_wire.check(msg["t"], key, forged) == (
            False, "bad_mac", "its MAC is wrong")
    assert device_wire.check(msg["t"], ring(key_a), forged)[0]  # its own key believes it


DOWN_MESSAGES = st.one_of(
    st.builds(lambda e, s, now: {"t": "ack", "epoch": e, "seq": s, "now": now},
              st.text(max_size=40), st.integers(0, 1 << 52), st.integers(0, 1 << 40)),
    st.builds(lambda i, slot, ctr: {"t": "cmd", "id": i, "op": "unlock", "slot": slot,
                                    "ctr": ctr},
              st.integers(1, 1 << 30), st.integers(0, 40), st.integers(0, 1 << 52)),
    st.builds(lambda now: {"t": "time", "now": now}, st.integers(0, 1 << 40)),
    st.builds(lambda i, rows: {"t": "funds", "id": i, "ok": True, "records": rows},
              st.integers(1, 1 << 30),
              st.lists(st.tuples(st.text(max_size=12), st.integers(0, 10**9),
                                 st.text(max_size=10), st.text(max_size=6)).map(list),
                       max_size=8)),
)


@given(DOWN_MESSAGES, st.binary(min_size=16, max_size=64))
@settings(max_examples=300)
def test_sealed_here_it_is_byte_for_byte_what_the_shared_codec_and_seal_write(
        msg: dict[str, Any], key: bytes) -> None:
    """The edge seals with CPython's faster paths; the device checks with the shared
    code: the bytes must be the same, Chinese text and all, or refused alike."""
    k = auth.Key(key)
    try:
        want = bytes(auth.seal(k, auth.DOWN, message.encode(msg)))
    except ValueError:
        try:
            device_wire.seal(k, msg)
        except ValueError:
            return
        raise AssertionError("sealed what the codec refuses") from None
    assert device_wire.seal(k, msg) == want


@given(st.binary(max_size=300), st.binary(min_size=16, max_size=32),
       st.integers(0, 299), st.integers(0, 255))
@settings(max_examples=300)
def test_the_edges_mac_check_agrees_with_the_shared_one_on_any_bytes(
        body: bytes, key: bytes, at: int, flip: int) -> None:
    """A sealed body, as sealed and with one byte changed anywhere (the tag too):
    the edge's check and the devices' shared one say the same."""
    k = auth.Key(key)
    raw = b'{"x":' + body.hex().encode() + b"}"
    sealed = bytes(auth.seal(k, auth.UP, b'{"b":"' + body.hex().encode() + b'"}'))
    for data in (sealed, raw, sealed[:at % len(sealed)] + bytes([flip])
                 + sealed[at % len(sealed) + 1:]):
        assert device_wire._verify(k, data) == bool(auth.verify(k, auth.UP, data))


@given(st.binary(max_size=1200), st.sampled_from(["ev", "state", "hello", "res", "lookup"]))
@settings(max_examples=300)
def test_any_bytes_get_a_verdict_and_never_an_exception(data: bytes, expected: str) -> None:
    ok, reason, detail = device_wire.check(expected, auth.Key(b"k" * 32), data)
    assert ok is False and isinstance(reason, str) and isinstance(detail, str)
    marshal.dumps((ok, reason, detail))  # it crosses the pipe


def test_nesting_past_the_interpreters_recursion_limit_is_bad_json_not_a_crash() -> None:
    """Found writing these tests: 1,000 brackets (a 1 KB frame from a wired dock)
    raised RecursionError out of the codec, through the serial reader and out of
    the edge. The codec now calls it bad JSON, on both interpreters' terms."""
    for data in (b"[" * 1000, b'{"a":' * 200):
        try:
            message.decode(data)
        except message.DecodeError as exc:
            assert exc.reason == "json"
        else:
            raise AssertionError(data[:20])
        assert device_wire.check("ev", auth.Key(b"k" * 32), data)[:2] == (False, "json")


def test_a_message_on_another_types_topic_is_dropped_as_such() -> None:
    key = secrets.token_bytes(32)
    data = _sealed(key, _event("dock-a", 1))
    assert device_wire.check("state", auth.Key(key), data)[:2] == (False, "wrong_topic")
    assert device_wire.check("ev", auth.Key(key), b'{"t":"ev"')[:2] == (False, "json")
    assert device_wire.check("ev", auth.Key(key), b"x" * 2000)[:2] == (False, "oversize")


def test_the_worker_answers_each_batch_in_order_as_the_edge_would() -> None:
    async def main() -> None:
        keys = {d: secrets.token_bytes(32) for d in ("dock-a", "dock-b")}
        batches = [[("ev", keys[d], _sealed(keys[d], _event(d, seq)))
                    for d in keys for seq in range(b * 10, b * 10 + 10)] for b in range(5)]
        batches[2].append(("ev", keys["dock-a"], _sealed(keys["dock-b"], _event("dock-a", 99))))
        batches[3].append(("ev", keys["dock-a"], b"\xff junk"))
        worker = device_wire.WireWorker()
        await worker.start()
        try:
            for b in batches:
                worker.submit(device_wire.CHECK, b)
            assert worker.in_flight == 5
            for b in batches:
                got = await worker.result()
                ring = device_wire.KeyRing()
                assert got == [device_wire.check(t, ring(k), d) for t, k, d in b]
            assert worker.in_flight == 0
        finally:
            await worker.close()
        assert not worker.running
    run(main())


def test_the_worker_seals_replies_as_the_edge_does_and_refuses_what_the_codec_refuses() -> None:
    async def main() -> None:
        key = secrets.token_bytes(32)
        replies = [{"t": "ack", "epoch": "e1", "seq": s, "now": 1_800_000_000 + s}
                   for s in range(20)]
        replies.append({"t": "cmd", "id": 7, "op": "unlock", "slot": 3, "ctr": 99})
        replies.append({"t": "ack", "epoch": "e1"})  # no seq: the codec refuses it
        worker = device_wire.WireWorker()
        await worker.start()
        try:
            worker.submit(device_wire.SEAL, [(key, m) for m in replies])
            got = await worker.result()
        finally:
            await worker.close()
        for m, (ok, data) in zip(replies[:-1], got[:-1], strict=True):
            assert ok and data == device_wire.seal(auth.Key(key), m)
            # What the device does with it: its own key's check, then the codec.
            assert auth.verify(auth.Key(key), auth.DOWN, data)
            assert {k: v for k, v in message.decode(data).items() if k != "mac"} == m
        assert got[-1][0] is False and "seq" in got[-1][1]
    run(main())


@needs_mosquitto
def test_a_worker_that_dies_is_started_again_and_nothing_it_held_is_lost(
        tmp_path: Path) -> None:
    async def main() -> None:
        broker, edge_pw, dock_pw = await broker_for_dock_a(tmp_path)
        key = secrets.token_bytes(32)


        inbound: asyncio.Queue[Any] = asyncio.Queue(maxsize=50)
        metrics = Metrics()
        n = 600
        t = MqttTransport(MqttConfig("127.0.0.1", broker.port, "huimin-edge", edge_pw,
                                     device_burst=4 * n), "t", inbound, metrics, DockAKeys(key))
        task = asyncio.create_task(t.run())
        try:
            await until(t.connected.is_set, 10, "the edge's connection")
            first = t.worker
            assert first is not None and first.running
            got: list[int] = []

            async def publish(seqs: range) -> None:
                async with aiomqtt.Client("127.0.0.1", broker.port, username="dock-a",
                                          password=dock_pw, identifier="dock-a",
                                          max_inflight_messages=n) as dock:
                    for seq in seqs:
                        await dock.publish("huimin/t/dock-a/event",
                                           _sealed(key, _event("dock-a", seq)), qos=1)

            async def take(until_seen: int) -> None:
                while len(set(got)) < until_seen:
                    item = await inbound.get()
                    got.append(item.msg.seq)
                    item.done()
            async with asyncio.timeout(60):
                await publish(range(1, n // 2 + 1))
                await take(50)
                # The worker dies with messages in hand: decoded and waiting for room in
                # the edge's queue, or not yet decoded.
                await until(inbound.full, 10, "a full queue")
                assert first._proc is not None
                os.kill(first._proc.pid, signal.SIGKILL)
                await publish(range(n // 2 + 1, n + 1))
                await take(n)
            assert sorted(set(got)) == list(range(1, n + 1))  # none lost
            assert metrics.get("mqtt.worker_restarts") == 1
            assert t.worker is not None and t.worker.running and t.worker.started == 2
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await broker.stop()
        assert t.worker is None  # closed with the transport
    run(main())


@needs_mosquitto
def test_with_no_worker_to_be_had_the_edge_checks_and_seals_in_its_own_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        broker, edge_pw, dock_pw = await broker_for_dock_a(tmp_path)
        key = secrets.token_bytes(32)


        inbound: asyncio.Queue[Any] = asyncio.Queue()
        t = MqttTransport(MqttConfig("127.0.0.1", broker.port, "huimin-edge", edge_pw), "t",
                          inbound, Metrics(), DockAKeys(key, worker=False))
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python-here"))
        task = asyncio.create_task(t.run())
        try:
            await until(t.connected.is_set, 10, "the edge's connection")
            monkeypatch.undo()
            assert t.worker is None
            async with aiomqtt.Client("127.0.0.1", broker.port, username="dock-a",
                                      password=dock_pw, identifier="dock-a") as dock:
                await dock.subscribe("huimin/t/dock-a/down", qos=1)
                await dock.publish("huimin/t/dock-a/event", _sealed(key, _event("dock-a", 1)),
                                   qos=1)
                async with asyncio.timeout(10):
                    item = await inbound.get()
                    assert item.msg == messages.Event("dock-a", "e1", 1, "returned", 1,
                                                      "0B00000001")
                    await item.reply({"t": "ack", "epoch": "e1", "seq": 1})
                    down = await anext(dock.messages)
                assert auth.verify(auth.Key(key), auth.DOWN, down.payload)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await broker.stop()
        assert "the wire worker could not start" in caplog.text
    run(main())


def _verdict(fn: Any, value: Any) -> tuple[str, str]:
    try:
        fn(value)
    except message.DecodeError as exc:
        return exc.reason, str(exc)
    return "ok", ""


_NAMES = st.sampled_from(["t", "dev", "epoch", "seq", "ev", "slot", "bike", "code", "at", "up",
                          "kind", "fw", "slots", "boot", "ota", "ctr", "n", "mem", "low", "q",
                          "qmax", "online", "id", "op", "enabled", "path", "off", "data",
                          "mac", "now", "ok", "err", "token", "records", "as_of", "stale",
                          "stations"])
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(1 << 54), 1 << 54),
    st.sampled_from([(1 << 53) - 1, 1 << 53, -(1 << 53), -(1 << 53) + 1]),
    st.text(max_size=3), st.text("ELUFXDBez", max_size=8), st.text(min_size=199, max_size=201),
    st.sampled_from(["ev", "state", "hello", "res", "status", "cmd", "ack", "time", "lookup",
                     "funds", "near", "nope", "rented", "returned", "fault", "unlock",
                     "set_slot", "reboot", "ota", "RENTED"]),
    st.floats(allow_nan=False), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))


def _whole_message(t: str) -> dict[str, Any]:
    """A message of type t with every field of its schema, each of its kind."""
    out: dict[str, Any] = {"t": t}
    for field in message.SCHEMA[t].split(" "):
        name = field.strip("#?*~")
        out[name] = {"#": 1, "?": True, "*": [1]}.get(field[0], "x")
    return out | {"ev": "rented", "op": "unlock", "slots": "ELU"}


@st.composite
def _near_messages(draw: Any) -> dict[str, Any]:
    """A whole message of any type with a few of its fields changed or gone."""
    msg = _whole_message(draw(st.sampled_from(sorted(message.SCHEMA))))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(sorted(msg)))
        if draw(st.booleans()):
            msg[name] = draw(_VALUES)
        else:
            del msg[name]
    return msg


@given(st.one_of(st.dictionaries(_NAMES, _VALUES, max_size=12), MESSAGES, DOWN_MESSAGES,
                 _VALUES, _near_messages(), _near_messages(), _near_messages()))
@settings(max_examples=1500)
def test_the_workers_schema_check_gives_the_codecs_verdict_on_any_value(value: Any) -> None:
    """The worker's check works each type's schema out once (device_wire._check);
    its verdict, reason and words are the shared codec's, whatever comes."""
    assert _verdict(device_wire._check, value) == _verdict(message.check, value)


_EDGES = [None, True, False, 0, 1, -1, (1 << 53) - 1, 1 << 53, -(1 << 53) + 1, -(1 << 53), 1.5,
          "", "x" * 200, "x" * 201, "ELUFXDB", "ELUz", "站", [1], {"a": 1}, "rented",
          "returned", "fault", "unlock", "set_slot", "reboot", "hello", "ota", "RENTED"]


def test_the_workers_schema_check_agrees_on_every_field_of_every_type_at_its_edges() -> None:
    """Every field of every type (kiosk types too), each value at a rule's edge:
    the same verdict as the codec's, field by field."""
    for t in sorted(message.SCHEMA):
        whole = _whole_message(t)
        for name in whole:
            for value in _EDGES:
                msg = whole | {name: value}
                assert _verdict(device_wire._check, msg) == _verdict(message.check, msg), msg
            msg = {k: v for k, v in whole.items() if k != name}
            assert _verdict(device_wire._check, msg) == _verdict(message.check, msg), msg


def _encoded(msg: dict[str, Any]) -> bytes:
    try:
        return bytes(message.encode(msg))
    except ValueError:  # the codec refuses it (a field, or the size)
        return b"{}"


@given(st.binary(max_size=1100) | st.builds(_encoded, _near_messages()))
@settings(max_examples=500)
def test_the_workers_decode_gives_the_codecs_verdict_on_any_bytes(data: bytes) -> None:
    assert _verdict(device_wire._decode, data) == _verdict(message.decode, data)


@given(st.binary(min_size=16, max_size=100), st.sampled_from([auth.UP, auth.DOWN]),
       st.binary(max_size=1100))
def test_the_edges_fast_key_tags_as_the_shared_key_does(raw: bytes, label: bytes,
                                                         data: bytes) -> None:
    fast, shared = device_wire.FastKey(raw), auth.Key(raw)
    assert fast.tag(label, data) == shared.tag(label, data)
    assert fast.tag(label, memoryview(data)) == shared.tag(label, data)  # as _verify calls it
