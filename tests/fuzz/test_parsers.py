"""Every parser that reads outside bytes, fed what hypothesis makes of them:
no crash (only the parser's own, documented error), no hang, nothing kept
beyond its bound, and good input still found among bad. Run longer with
`.venv/bin/python bench/fuzz.py` (HUIMIN_FUZZ_EXAMPLES); bugs found are kept
below as explicit examples."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT

FW = ROOT / "firmware"
settings.register_profile("ci", max_examples=int(os.environ.get("HUIMIN_FUZZ_EXAMPLES", "200")),
                          deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@pytest.fixture(autouse=True, scope="module")
def _device_path() -> Any:
    # Device-side modules (the flash journal, the updater, the bootloader) as
    # the edge's tests import them: firmware/lib and firmware/bootloader.
    import sys

    added = [str(FW / "lib"), str(FW / "bootloader"), str(FW)]
    sys.path[:0] = added
    yield
    for p in added:
        sys.path.remove(p)


chunks = st.lists(st.binary(max_size=300), max_size=20)


# -- serial framing and link ---------------------------------------------------
@given(chunks, st.integers(0, 19))
def test_frame_decoder_takes_any_bytes_and_finds_a_good_frame_after_them(
        junk: list[bytes], where: int) -> None:
    from wire.framing import KIND_DATA, FrameDecoder, encode_frame

    good = encode_frame(KIND_DATA, 7, b'{"t":"ack","epoch":"e","seq":1}')
    dec = FrameDecoder(1024)
    stream = [*junk[:where], good, *junk[where:]]
    got = []
    for c in stream:
        mv = memoryview(c)
        off = 0
        while off < len(c):
            took = dec.feed(mv[off:])
            off += took
            while (f := dec.next()) is not None:
                got.append(f)
            if not took:
                dec.overflow()
        assert dec.pending() <= 1024 + 8
        dec.gap()  # a pause between chunks: a partial frame is abandoned, counted
    for f in got:
        assert isinstance(f, tuple) and len(f) == 3


@given(chunks)
def test_link_takes_any_bytes(junk: list[bytes]) -> None:
    from wire.link import Link

    link = Link(max_payload=256)
    for c in junk:
        link.receive(c)
        while link.recv() is not None:
            pass
        link.poll(0)
    assert link.decoder.pending() <= 256 + 8


# -- the message model ---------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=6), max_leaves=20)


@given(st.binary(max_size=1200))
@example(b'{"t":"state","dev":"d","boot":1,"n":1,"slots":["E"]}')
@example(b'{"t":"cmd","id":1,"op":"unlock","slot":1e400}')
def test_message_decode_raises_only_decode_error(data: bytes) -> None:
    from wire import (
        kiosk_messages,  # noqa: F401
        message,
    )

    try:
        message.decode(data)
    except message.DecodeError:
        pass


@given(st.dictionaries(st.sampled_from(["t", "dev", "id", "op", "slot", "epoch", "seq", "ev",
                                        "kind", "fw", "slots", "boot", "n", "token", "online",
                                        "records", "ctr", "mac", "enabled"]),
                       json_values, max_size=10),
       st.sampled_from(["hello", "state", "ev", "status", "cmd", "ack", "res", "lookup",
                        "funds", "near"]))
def test_message_check_of_any_object_with_a_known_type(msg: dict[str, Any], t: str) -> None:
    from wire import (
        kiosk_messages,  # noqa: F401
        message,
    )

    msg["t"] = t
    try:
        ok = message.check(msg)
    except message.DecodeError:
        return
    message.encode(ok)  # what passed the check encodes


@given(st.binary(max_size=200), st.binary(min_size=16, max_size=80))
def test_mac_verify_of_any_bytes_is_a_bool(data: bytes, key: bytes) -> None:
    from wire import auth

    assert auth.verify(auth.Key(key), auth.DOWN, data) in (True, False)
    sealed = bytes(auth.seal(auth.Key(key), auth.DOWN, b'{"a":' + data.hex().encode() + b"}"))
    assert auth.verify(auth.Key(key), auth.DOWN, sealed)


# -- the ID-card module, tag readers, display and voice answers ----------------
@given(chunks)
def test_idcard_decoder_takes_any_bytes(junk: list[bytes]) -> None:
    from wire import idcard

    dec = idcard.SamDecoder(idcard.TEXT_KEEP)
    for c in junk:
        mv = memoryview(c)
        off = 0
        while off < len(c):
            off += dec.feed(mv[off:])
            body = dec.next()
            if body is not None:
                try:
                    text = idcard.read_text(body, dec.size)
                except ValueError:
                    continue
                person = idcard.person(text)
                assert len(person) == 4
        assert len(dec._buf) == idcard.TEXT_KEEP


@given(st.binary(min_size=256, max_size=256))
def test_idcard_text_block_of_any_bytes(block: bytes) -> None:
    from wire import idcard

    name, number, valid_to, _resident = idcard.person(block)
    if idcard.check_id(number) is None:  # passed the check digit: a well-formed number
        assert len(number) == 18
    idcard.expired(valid_to, "20261201")
    idcard.mask_id(number)
    idcard.mask_name(name)


@given(st.lists(st.tuples(st.integers(0, 11), st.integers(0, 255)), max_size=400))
def test_tag_parser_takes_any_bytes_on_any_slot(feed: list[tuple[int, int]]) -> None:
    from wire.rdm6300 import TagParser

    p = TagParser(12)
    for slot, c in feed:
        tag = p.feed(slot, c)
        assert tag is None or (len(tag) == 10 and all(ch in "0123456789ABCDEF" for ch in tag))


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
@example(b"\x5a\xa5\x06\x83\x10\x00\x02", 0x1000)
def test_display_answer_of_any_bytes(data: bytes, vp: int) -> None:
    from wire import hmi_query

    words = hmi_query.dwin_answer(data, vp)
    assert words is None or all(0 <= w <= 0xFFFF for w in words)


# -- device files: the flash journal, the updater's manifest, the boot record ---
@given(st.binary(max_size=300), st.binary(max_size=300), st.binary(max_size=60))
@example(b"", b"", b"e1 x\n")
@example(b'1 {"t":"ev"}\n', b"", b"")
@example(b'1 [1]\n', b"", b"")
def test_flash_journal_opens_any_files(events: bytes, acks: bytes, meta: bytes,
                                       ) -> None:
    import tempfile

    from journal import Journal

    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "j"
        root.mkdir()
        (root / "events").write_bytes(events)
        (root / "acks").write_bytes(acks)
        (root / "meta").write_bytes(meta)
        try:
            j = Journal(str(root))
        except UnicodeDecodeError:
            return  # not text at all: the port's VFS reads bytes as it can (see note)
        assert isinstance(j.epoch, str) and j.epoch
        assert isinstance(j.next_seq, int) and j.next_seq >= 1
        got: list[object] = []
        j.replay(8, lambda m: got.append(m) or True)
        assert all(isinstance(m, dict) for m in got)


@given(st.text(max_size=400))
@example('{\n "files": {\n  "a\n }\n}')
def test_updater_manifest_reader_of_any_text(text: str) -> None:
    import io

    import ota

    try:
        for p, h in ota._entries(io.StringIO(text)):
            assert isinstance(p, str) and isinstance(h, str)
    except ValueError:
        pass


@given(st.text(max_size=60))
@example("a b x 0 -")
@example("a b 2 y -")
@example("q - 0 0 -")
@example("a - 2 0 x")
def test_boot_record_of_any_text_picks_a_slot(record: str) -> None:
    import tempfile

    import slot

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        try:
            Path("boot_record").write_text(record)
            _r, f, update = slot.choose()
            assert f in ("slot_a", "slot_b") and update in (True, False)
        finally:
            os.chdir(cwd)


# -- the edge's doors ----------------------------------------------------------
DOCK_A_KEY = bytes(range(32))  # the fuzzed edge's key for dock-a


def _sealed_by_dock_a(msg: dict[str, Any]) -> bytes:
    from wire import auth
    body = json.dumps(msg, separators=(",", ":")).encode()
    return bytes(auth.seal(auth.Key(DOCK_A_KEY), auth.UP, body))


@given(st.text(max_size=60), st.binary(max_size=1500))
@example("huimin/t/dock-a/event", b'{"t":"ev"}')
@example("huimin/t/_edge/event", b"x")
@example("huimin/t/dock-a/event", _sealed_by_dock_a(
    {"t": "ev", "dev": "dock-a", "epoch": "e", "seq": 1, "ev": "rented", "slot": 0}))
@example("huimin/t/dock-a/state", _sealed_by_dock_a(
    {"t": "ev", "dev": "dock-a", "epoch": "e", "seq": 1, "ev": "rented", "slot": 0}))
def test_edge_mqtt_payload_path_of_any_topic_and_payload(topic: str, payload: bytes) -> None:
    import asyncio

    from edge.adapters.transports.mqtt import MqttTransport
    from edge.adapters.transports.mqtt_codec import Publish
    from edge.core.metrics import Metrics

    class Keys:
        def seal(self, dev: str, msg: dict[str, Any]) -> bytes:
            raise KeyError(dev)

        def verify(self, dev: str, data: bytes) -> bool | None:
            raise AssertionError("the MQTT transport checks with command_key")

        def command_key(self, dev: str) -> bytes | None:
            return DOCK_A_KEY if dev == "dock-a" else None

        def to_seal(self, dev: str, msg: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
            raise KeyError(dev)

    async def main() -> None:
        q: asyncio.Queue[Any] = asyncio.Queue()
        from edge.config import MqttConfig

        class Conn:  # what the transport needs of its connection: acks
            def __init__(self) -> None:
                self.acked: list[int] = []

            def ack(self, pid: int) -> None:
                self.acked.append(pid)

        t = MqttTransport(MqttConfig("127.0.0.1", username="e", password="p"), "t", q,
                          Metrics(), Keys())
        conn = Conn()
        await t._take(conn, [Publish(topic, payload, 1, 7)])  # type: ignore[arg-type]
        if q.empty():
            assert conn.acked == [7]  # dropped: let go of at once, counted
        while not q.empty():
            item = q.get_nowait()
            assert item.device == "dock-a" and item.msg.dev == "dock-a"  # typed, checked
            assert conn.acked == [] and item.done is not None
            item.done()  # once the edge is done with it
            assert conn.acked == [7]

    asyncio.run(main())


@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255),
                          st.binary(max_size=40)), min_size=1, max_size=6),
       st.binary(min_size=16, max_size=32))
def test_pcsc_answers_of_any_card(answers: list[tuple[int, int, bytes]], key: bytes) -> None:
    from edge.adapters.cardreader import pcsc

    class Card:
        def __init__(self) -> None:
            self.left = list(answers)

        def transmit(self, apdu: list[int]) -> tuple[list[int], int, int]:
            if not self.left:
                return [], 0x6A, 0x82
            sw1, sw2, data = self.left.pop(0)
            return list(data), sw1, sw2

    for read in (pcsc.social_card, pcsc.bank_card):
        try:
            read(Card(), key)  # type: ignore[arg-type]
        except pcsc.CardReadError:
            pass


@given(json_values)
def test_edge_config_of_any_toml_shaped_value(raw: Any) -> None:
    from edge.config import ConfigError, parse

    try:
        parse(raw if isinstance(raw, dict) else {"edge": raw})
    except ConfigError:
        pass


# -- the backend's rental message (MQTT or NATS uplink) ------------------------------
RENTAL_SECRET = "site-secret-0123456789"


def _signed(body: str, ts: object = None, sig: object = None) -> bytes:
    from cloud_bridge.signing import sign

    h = sign(RENTAL_SECRET, body.encode("utf-8", "surrogatepass"))
    return json.dumps({"ts": h["X-Huimin-Timestamp"] if ts is None else ts, "body": body,
                       "sig": h["X-Huimin-Signature"] if sig is None else sig}).encode()


@given(st.one_of(st.binary(max_size=400), json_values.map(lambda v: json.dumps(v).encode()),
                 json_values.map(lambda v: _signed(json.dumps(v))),
                 st.text(max_size=60).map(lambda t: _signed("{}", sig=t)),
                 json_values.map(lambda v: _signed("{}", ts=v))))
@example(b"[" * 5_000 + b"]" * 5_000)  # deeper than the stack: was a RecursionError
@example(b"[" * 100_000 + b"]" * 100_000)  # and far bigger than a rental
@example(_signed('{"rental_id": "r1"}', sig="sha256=\u00e9\u00e9"))  # was a TypeError
@example(_signed("[" * 3_000 + "]" * 3_000))  # a signed, deep body
@example(_signed('"just a string"'))
@example(b'{"ts": 1, "body": "\\ud800", "sig": "x"}')  # a lone surrogate in the body
def test_rental_message_of_any_bytes_is_a_rental_or_refused(payload: bytes) -> None:
    from cloud_bridge.rental_message import open_rental
    from edge.core.errors import Rejected
    from edge.core.metrics import Metrics
    from edge.core.rentals import parse_request

    m = Metrics()
    rental = open_rental(RENTAL_SECRET, payload, m, "fuzz")
    if rental is None:
        assert m.get("rentals.rejected", "malformed") + m.get("rentals.rejected",
                                                              "signature") == 1
        return
    assert isinstance(rental, dict)
    try:
        req = parse_request(rental)
    except Rejected:
        return
    assert req.slot is None or 0 <= req.slot < 256


def test_a_rental_the_desk_fails_on_costs_that_rental_only() -> None:
    from cloud_bridge.rental_message import hand_over
    from edge.core.metrics import Metrics

    m = Metrics()
    taken: list[object] = []

    def desk(rental: object) -> None:
        if rental == "bad":
            raise RecursionError("as a pathological rental once did")
        taken.append(rental)

    for r in ("a", "bad", "b"):
        hand_over(desk, r, m, "fuzz")
    assert taken == ["a", "b"] and m.get("rentals.rejected", "error") == 1


def test_examples_in_json_are_valid() -> None:
    # The explicit examples above are bytes a test can read: keep them honest.
    assert json.loads('{"t":"ev"}')["t"] == "ev"
