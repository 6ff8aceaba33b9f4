"""The edge's MQTT 3.1.1 codec (sans-IO) with plain bytes: golden frames
written out from the standard's own layouts, a round trip over any split of
the stream into reads, and nothing but ProtocolError from junk."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.adapters.transports import mqtt_codec as codec


def _hex(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


# The remaining length's examples from MQTT 3.1.1, table 2.4.
@pytest.mark.parametrize(("n", "frame"), [
    (0, "00"), (127, "7f"), (128, "80 01"), (16_383, "ff 7f"), (16_384, "80 80 01"),
    (2_097_151, "ff ff 7f"), (2_097_152, "80 80 80 01"), (268_435_455, "ff ff ff 7f")])
def test_the_remaining_length_as_the_standard_writes_it(n: int, frame: str) -> None:
    assert codec._length(n) == _hex(frame)


def test_golden_frames_out() -> None:
    # CONNECT: protocol name, level 4, flags (clean session), keepalive 30, client id.
    assert codec.connect("c", 30) == _hex("10 0d 0004 4d515454 04 02 001e 0001 63")
    # With a Will (QoS 1, retained), a user name and a password, a persistent session:
    # flags 1110 1100.
    assert codec.connect("c", 30, False, "u", "p", ("w", b"x", 1, True)) == _hex(
        "10 19 0004 4d515454 04 ec 001e 0001 63 0001 77 0001 78 0001 75 0001 70")
    assert codec.subscribe(1, [("a/+", 1)]) == _hex("82 08 0001 0003 612f2b 01")
    assert codec.publish("t", b"hi", 1, 10) == _hex("32 07 0001 74 000a 6869")
    assert codec.publish("t", b"hi", 0, retain=True) == _hex("31 05 0001 74 6869")
    assert codec.publish("t", b"", 1, 7, dup=True) == _hex("3a 05 0001 74 0007")
    assert codec.puback(10) == _hex("40 02 000a")
    assert codec.pubacks([1, 258]) == _hex("40 02 0001 40 02 0102")
    assert codec.PINGREQ_BYTES == _hex("c0 00") and codec.DISCONNECT_BYTES == _hex("e0 00")


def test_golden_frames_in() -> None:
    r = codec.PacketReader()
    got = r.feed(_hex("20 02 01 00  90 04 0001 01 80  d0 00  40 02 000a  b0 02 0003"
                      "  30 05 0001 74 6869  33 07 0001 74 0102 6869"))
    assert got == [codec.ConnAck(True, 0), codec.SubAck(1, (1, 0x80)), codec.PingResp(),
                   codec.PubAck(10), codec.UnsubAck(3), codec.Publish("t", b"hi", 0, 0),
                   codec.Publish("t", b"hi", 1, 0x102, retain=True)]
    assert r.buffered == 0


def test_a_packet_split_anywhere_waits_for_its_rest() -> None:
    frame = codec.publish("huimin/anji/dock-001/event", b"x" * 300, 1, 9)
    r = codec.PacketReader()
    for i in range(len(frame) - 1):
        assert r.feed(frame[i:i + 1]) == []
    assert r.feed(frame[-1:]) == [codec.Publish("huimin/anji/dock-001/event", b"x" * 300, 1, 9)]


@pytest.mark.parametrize(("frame", "why"), [
    ("36 05 0001 74 6869", "QoS 3"),                   # QoS bits 11
    ("30 ff ff ff ff 01", "over four bytes"),          # a fifth length byte
    ("10 00", "never gets"),                           # a CONNECT, from a broker
    ("30 04 0001 ff 00", "not UTF-8"),                 # topic byte 0xff
    ("32 03 0001 74", "shorter than its topic"),       # QoS 1 with no room for its id
    ("30 01 00", "too short"),
])
def test_what_a_broker_may_not_send_is_refused(frame: str, why: str) -> None:
    with pytest.raises(codec.ProtocolError, match=why):
        codec.PacketReader().feed(_hex(frame))


def test_a_packet_over_the_bound_is_refused_before_it_is_read_whole() -> None:
    r = codec.PacketReader(max_packet=1024)
    with pytest.raises(codec.ProtocolError, match="at most 1024"):
        r.feed(codec.publish("t", b"x" * 2000)[:5])  # only its header has come


_publishes = st.builds(
    codec.Publish, topic=st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t),
    payload=st.binary(max_size=400), qos=st.sampled_from([0, 1]),
    pid=st.integers(1, 65535), retain=st.booleans(), dup=st.booleans())


@settings(max_examples=200, deadline=None)
@given(packets=st.lists(st.one_of(_publishes, st.builds(codec.PubAck, st.integers(0, 65535))),
                        max_size=30),
       cuts=st.lists(st.integers(0, 20_000), max_size=12))
def test_any_stream_cut_into_any_reads_gives_back_its_packets(
        packets: list[codec.Packet], cuts: list[int]) -> None:
    want = [codec.Publish(p.topic, p.payload, p.qos, p.pid if p.qos else 0, p.retain, p.dup)
            if isinstance(p, codec.Publish) else p for p in packets]
    stream = b"".join(codec.publish(p.topic, p.payload, p.qos, p.pid, p.retain, p.dup)
                      if isinstance(p, codec.Publish) else codec.puback(p.pid)
                      for p in packets)
    r = codec.PacketReader()
    got: list[codec.Packet] = []
    start = 0
    for c in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        got += r.feed(stream[start:c])
        start = c
    assert got == want and r.buffered == 0


@settings(max_examples=300, deadline=None)
@given(junk=st.binary(max_size=200))
def test_junk_gives_packets_or_a_protocol_error_and_nothing_else(junk: bytes) -> None:
    try:
        codec.PacketReader(max_packet=4096).feed(junk)
    except codec.ProtocolError:
        pass
