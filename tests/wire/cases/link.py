# The serial line's frames (wire/framing.py) and the reliable link over them
# (wire/link.py): byte-exact frames, resync, retransmit, bounds.
from wire import framing, names
from wire.framing import KIND_ACK, KIND_DATA, FrameDecoder, crc16, encode_frame
from wire.link import Link


def _collect(take):
    """Call take() until it returns None; the results in order."""
    out = []
    while True:
        x = take()
        if x is None:
            return out
        out.append(x)


def _all(dec):
    return _collect(dec.next)


def case_crc_check_value():
    assert crc16(b"123456789") == 0x29B1


def case_frame_roundtrip_chunked():
    frames = [encode_frame(KIND_DATA, i, b"x" * i) for i in range(0, 40, 7)]
    stream = b"".join(frames)
    for chunk in (1, 2, 5, 64, len(stream)):
        dec = FrameDecoder()
        got = []
        for i in range(0, len(stream), chunk):
            dec.feed(stream[i:i + chunk])
            got += _all(dec)
        assert [g[2] for g in got] == [b"x" * i for i in range(0, 40, 7)], chunk
        assert not dec.drops


def case_frame_garbage_and_bad_crc_resync():
    good = encode_frame(KIND_DATA, 1, b"hello")
    bad = bytearray(encode_frame(KIND_DATA, 2, b"world"))
    bad[-1] ^= 0xFF
    dec = FrameDecoder()
    dec.feed(b"\x00\xffnoise\xa5" + bytes(bad) + good)
    got = _all(dec)
    assert [g[2] for g in got] == [b"hello"]
    assert dec.drops.get("crc") == 1
    assert dec.drops.get("noise", 0) >= 7


def case_frame_oversize_length_and_bad_kind():
    dec = FrameDecoder(max_payload=64)
    dec.feed(b"\xa5\x5a\x01\x00\x10\x00" + encode_frame(KIND_ACK, 9))
    assert _all(dec) == [(KIND_ACK, 9, b"")]
    assert dec.drops.get("length") == 1
    dec.feed(b"\xa5\x5a\x09\x00\x00\x00\x00\x00" + encode_frame(KIND_DATA, 3, b"z"))
    assert [g[2] for g in _all(dec)] == [b"z"]
    assert dec.drops.get("kind") == 1


def case_frame_truncated_then_gap():
    dec = FrameDecoder()
    f = encode_frame(KIND_DATA, 5, b"abcdef")
    dec.feed(f[:7])
    assert dec.next() is None
    dec.gap()
    dec.feed(f)
    assert [g[2] for g in _all(dec)] == [b"abcdef"]
    assert dec.drops.get("gap") == 1


def case_frame_flood_never_sticks():
    dec = FrameDecoder(max_payload=32)
    for _ in range(50):
        dec.feed(b"\xa5\x5a\x01\x00\x20" + b"\xa5" * 60)
        _all(dec)
    dec.gap()
    dec.feed(encode_frame(KIND_DATA, 1, b"ok"))
    assert [g[2] for g in _all(dec)] == [b"ok"]


def case_frame_local_misuse_raises():
    try:
        encode_frame(KIND_DATA, 0, b"x" * (framing.MAX_PAYLOAD + 1))
    except framing.FrameError:
        return
    assert False, "oversize payload accepted"


def _pair():
    # 256-byte buffers: these cases also run inside a 64K MicroPython heap.
    a = Link(rto_ms=100, max_payload=256, queue_bytes=1024)
    b = Link(rto_ms=100, max_payload=256, queue_bytes=1024)
    return a, b


def _move(src, dst, now, drop):
    """Send everything src has for dst, losing the first `drop` frames."""
    moved = False
    out = src.poll(now)
    while out is not None:
        moved = True
        if drop:
            drop -= 1
        else:
            dst.receive(out)
        out = src.poll(now)
    return moved, drop


def _shuttle(a, b, now, drop_a=0, drop_b=0):
    """Move bytes both ways until quiet; drop the first N frames from a (or b)."""
    moved = True
    while moved:
        ma, drop_a = _move(a, b, now, drop_a)
        mb, drop_b = _move(b, a, now, drop_b)
        moved = ma or mb
    return drop_a, drop_b


def _drain(link):
    return _collect(link.recv)


def case_link_delivers_in_order():
    a, b = _pair()
    for i in range(5):
        assert a.send(b"m%d" % i)
    _shuttle(a, b, 0)
    assert _drain(b) == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert a.idle()


def case_link_retransmits_lost_frame_and_lost_ack_delivers_once():
    a, b = _pair()
    a.send(b"one")
    _shuttle(a, b, 0, drop_a=1)  # the data frame is lost
    assert _drain(b) == []
    _shuttle(a, b, 150)  # timer fires: resend
    assert _drain(b) == [b"one"]
    a.send(b"two")
    _shuttle(a, b, 200, drop_b=1)  # b's ack is lost
    assert _drain(b) == [b"two"]
    _shuttle(a, b, 400)  # a resends; b acks again but delivers once
    assert _drain(b) == []
    assert b.stats[names.LINK_STATS.index("dup")] == 1 and a.idle()


def case_link_peer_restart_is_not_a_duplicate():
    a, b = _pair()
    a.send(b"x")
    _shuttle(a, b, 0)
    _drain(b)
    a2 = Link(max_payload=256)  # the peer rebooted: its first frame carries FLAG_FIRST, seq 1 again
    a2.send(b"y")
    _shuttle(a2, b, 0)
    assert _drain(b) == [b"y"]


def case_link_burst_longer_than_a_frame_loses_nothing():
    b = Link(max_payload=200)
    frames = b"".join(encode_frame(KIND_DATA | 0x80 * (i == 0), i + 1, b"p" * 180)
                      for i in range(4))
    b.receive(frames)  # one read holding four frames, the decoder holds one
    assert len(_drain(b)) == 4 and not b.decoder.drops


def case_link_queue_bound():
    a = Link(max_queue=2, max_payload=64)
    assert a.send(b"1") and a.send(b"2") and not a.send(b"3")
    assert a.stats[names.LINK_STATS.index("queue_full")] == 1


def case_link_queue_bound_in_bytes_and_wrapping():
    # A 64-byte ring that is never empty: payloads of odd sizes wrap around its
    # end, length prefixes and all.
    a = Link(max_queue=8, max_payload=64, queue_bytes=64)
    b = Link(max_payload=64, queue_bytes=64)
    assert a.room(40) and not a.room(63)
    assert a.send(b"a" * 40) and not a.send(b"b" * 30)  # 42 + 32 > 64 bytes
    assert a.stats[names.LINK_STATS.index("queue_full")] == 1
    waiting = [b"a" * 40]  # sent, not yet delivered (checked as they come: small heap)
    n = 0
    for i in range(60):
        p = bytes([65 + i % 26]) * (3 + (i * 7) % 19)
        if a.send(p):
            waiting.append(p)
            n += 1
        out = a.poll(i * 1000)  # one frame a turn, acked: the queue moves on by one
        if out is not None:
            b.receive(out)
            a.receive(b.poll(i * 1000))
        got = b.recv()
        if got is not None:
            assert got == waiting.pop(0)
    _shuttle(a, b, 10 ** 6)
    assert _drain(b) == waiting and n >= 40
    assert a.idle() and a.queued() == 0 and a.room(62)


def case_link_frames_match_the_codec_and_oversize_raises():
    a = Link(max_payload=256, max_send=32, queue_bytes=128)
    assert a.send(b"abc") and a.send(bytearray(b"de"))
    assert bytes(a.poll(0)) == encode_frame(KIND_DATA | 0x80, 1, b"abc")
    assert a.poll(50) is None  # waiting for the ack
    assert bytes(a.poll(250)) == encode_frame(KIND_DATA | 0x80, 1, b"abc")  # resent as it was
    a.receive(encode_frame(KIND_ACK, 1))
    assert bytes(a.poll(250)) == encode_frame(KIND_DATA, 2, b"de")
    try:
        a.send(b"x" * 33)
    except framing.FrameError:
        return
    assert False, "a payload over max_send was queued"
