# Table-driven cases for the shared sans-IO code (wire/*, the dock's slot state
# machine). Plain asserts, no pytest: this file runs under MicroPython (see
# test_both_interpreters.py) and under CPython, and must pass the same way.
from wire import framing, message, names, rdm6300, rdm6300_module
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


def case_message_roundtrip_and_errors():
    ev = {"t": "ev", "dev": "dock-1", "epoch": "ab12", "seq": 3, "ev": "rented", "slot": 2,
          "bike": "0A0000BEEF"}
    assert message.decode(message.encode(ev)) == ev
    bad = [
        (b"{nope", names.E_JSON),
        (b"\xff\xfe", names.E_JSON),
        (b'"just a string"', names.E_FIELD),
        (b'{"t":"teleport"}', names.E_TYPE),
        (b'{"dev":"x"}', names.E_TYPE),
        (b'{"t":"ev","dev":"d","epoch":"e","seq":"1","ev":"rented","slot":1}', names.E_FIELD),
        (b'{"t":"ev","dev":"d","epoch":"e","seq":1,"ev":"stolen","slot":1}', names.E_FIELD),
        (b'{"t":"ev","dev":"d","epoch":"e","seq":true,"ev":"rented","slot":1}', names.E_FIELD),
        (b'{"t":"state","dev":"d","boot":1,"n":1,"slots":"LLQ"}', names.E_FIELD),
        (b'{"t":"cmd","id":1,"op":"selfdestruct"}', names.E_FIELD),
        (b'{"t":"ack","epoch":"e"}', names.E_FIELD),
        (b'{"t":"ack","epoch":"e","seq":1,"pad":"' + b"x" * 1100 + b'"}', names.E_SIZE),
    ]
    for data, reason in bad:
        try:
            message.decode(data)
        except message.DecodeError as e:
            assert e.reason == reason, (data, e.reason)
        else:
            assert False, data


def case_rdm6300_frames():
    p = rdm6300.TagParser()
    frame = rdm6300_module.encode("0A0000BEEF")
    assert len(frame) == 14 and frame[0] == 2 and frame[-1] == 3
    got = [p.feed(0, c) for c in b"\x00junk" + frame]
    assert [g for g in got if g] == ["0A0000BEEF"]
    for c in rdm6300_module.encode("0A0000BEEF", corrupt=True):
        assert p.feed(0, c) is None
    assert p.bad == 1
    # A frame cut short by a new STX resyncs on the new frame.
    got = [p.feed(0, c) for c in frame[:6] + frame]
    assert [g for g in got if g] == ["0A0000BEEF"] and p.bad == 2
    # Readers of different slots interleave without mixing their frames.
    multi = rdm6300.TagParser(3)
    other = rdm6300_module.encode("0B00000002")
    got = []
    for i in range(14):
        got.append(multi.feed(2, frame[i]))
        got.append(multi.feed(0, other[i]))
    assert [g for g in got if g] == ["0A0000BEEF", "0B00000002"] and multi.bad == 0


def _dock(n=3):
    from apps.dock.slots import Slots
    return Slots(n, tag_ms=100, lock_ms=100, take_ms=1000)


def case_slots_return_then_rent():
    d = _dock()
    d.boot([0, 0, 0], [0, 0, 0], 0)
    assert d.codes() == "EEE"
    d.sense(1, 1, 0, 10)  # bike pushed in
    d.tag(1, "0A00000001", 20)
    assert d.lock_out[1] == 1 and d.codes() == "EUE"
    d.sense(1, 1, 1, 60)  # bolt closed
    assert d.codes() == "ELE"
    assert d.events == [("returned", 1, "0A00000001", None)]
    d.events.clear()
    d.unlock(1, 77, 100)
    assert d.lock_out[1] == 0
    d.sense(1, 1, 0, 150)  # bolt open
    assert d.results == [(77, True, None, 1)]
    d.sense(1, 0, 0, 400)  # bike taken
    assert d.events == [("rented", 1, "0A00000001", None)] and d.codes() == "EEE"


def case_slots_bike_taken_in_the_same_scan_as_the_bolt_opens():
    d = _dock(1)
    d.boot([1], [1], 0)
    d.tag(0, "0A00000003", 0)
    d.unlock(0, 5, 0)
    d.sense(0, 0, 0, 20)  # one scan sees the bolt open and the bike gone
    assert d.results == [(5, True, None, 0)]
    assert d.events == [("rented", 0, "0A00000003", None)] and d.codes() == "E"


def case_slots_refusals_and_faults():
    d = _dock()
    d.boot([1, 0, 1], [1, 0, 1], 0)
    d.unlock(1, 1, 0)
    d.unlock(9, 2, 0)
    assert d.results == [(1, False, "no_bike", 1), (2, False, "bad_slot", 9)]
    d.results.clear()
    d.unlock(0, 3, 0)  # the bolt never opens: jammed
    d.tick(200)
    assert d.results == [(3, False, "lock_jammed", 0)] and d.codes()[0] == "X"
    assert d.events[-1] == ("fault", 0, None, "lock_jammed")
    d.unlock(0, 4, 300)
    assert d.results[-1] == (4, False, "fault", 0)
    assert d.set_enabled(0, True, 400) and d.codes()[0] == "L"  # operator clears it
    d.sense(1, 1, 0, 500)  # a bike whose tag cannot be read
    d.tick(700)
    assert d.events[-1] == ("fault", 1, None, "tag_unreadable") and d.codes()[1] == "X"
    d.sense(1, 0, 0, 800)  # the rider takes it back
    assert d.codes()[1] == "F"
    assert d.set_enabled(2, False, 900) and d.codes()[2] == "B"
    d.unlock(2, 5, 900)
    assert d.results[-1] == (5, False, "disabled", 2)


def case_slots_untaken_rental_relocks_without_event():
    d = _dock(1)
    d.boot([1], [1], 0)
    d.tag(0, "0A00000002", 0)  # the docked bike's tag, read after boot
    d.unlock(0, 1, 0)
    d.sense(0, 1, 0, 50)
    d.tick(2000)  # rider never took it
    assert d.lock_out[0] == 1
    d.sense(0, 1, 1, 2050)
    assert d.codes() == "L" and d.events == []


def case_idcard_number_check_and_masks():
    from wire import idcard as c
    assert c.check_id("11010519491231002X") is None
    assert c.check_id("440524188001010014") is None
    assert c.check_id("440524188001010015") == "check"
    assert c.check_id("440524188002300014") == "birth"
    assert c.check_id("040524188001010014") == "region"
    assert c.check_id("4405241880010100") == "length"
    assert c.check_id("44052418800101001A") == "digits"
    assert c.check_id("110105190002290018")[:5] in ("birth", "check")  # 1900 not a leap year
    assert c.expired("20200101", "20261123") and not c.expired("长期", "20261123")
    assert not c.expired("20300101", "20261123")
    assert c.mask_name("张三丰") == "张**" and c.mask_name("李四") == "李*"
    assert c.mask_id("11010519491231002X") == "1****************X"
    assert c.token(b"region-key-0001", "11010519491231002X") == "4c8ff931add5422568bfa5b8f1db6182"


def case_idcard_text_block_roundtrip_and_frames():
    from wire import idcard as c
    from wire import idcard_module as m
    f = {"name": "王秀英", "gender": "2", "nation": "01", "birth": "18900101",
         "address": "凯里市舟溪镇青曼村3号", "id": "522601189001010014",
         "authority": "凯里市公安局", "valid_from": "20100101", "valid_to": "长期",
         "reserved": ""}
    text = m.build_text(f)
    assert len(text) == 256
    got = m.parse_text(text)
    assert got["name"] == "王秀英" and got["address"] == f["address"]
    assert got["valid_to"] == "长期" and got["card_type"] == "resident"
    assert c.person(text) == ("王秀英", "522601189001010014", "长期", True)
    f["reserved"] = "J"
    assert c.person(m.build_text(f))[3] is False
    body = bytes((1, 0, 4, 0)) + text + bytes(range(256)) * 4  # text + a 1K photo
    frame = m.response(c.OK, body)
    # Streaming, as a kiosk reads: only the text part is kept, the photo checksummed.
    d = c.SamDecoder(c.TEXT_KEEP)
    assert d.feed(frame[:100]) == 100 and d.pending()
    assert d.next() is None
    rest = frame[100:] + m.response(m.E_FIND)
    took = d.feed(rest)
    assert took == len(frame) - 100
    b1 = d.next()  # a view into the decoder's buffer
    assert len(b1) == c.TEXT_KEEP and d.size == 3 + len(body)
    assert bytes(b1[:3]) == b"\x00\x00\x90" and bytes(c.read_text(b1, d.size)) == text
    assert c.person(c.read_text(b1, d.size))[0] == "王秀英"
    d.feed(rest[took:])
    assert bytes(d.next()) == b"\x00\x00\x80" and not d.drops
    body = frame = rest = None
    # Whole frames (the emulator's and the edge's view), two in one read.
    frame = m.response(c.OK, bytes((1, 0, 0, 4)) + text + b"\x00\x01\x02\x03")
    d = c.SamDecoder()
    b1, b2 = d.decode(frame + m.response(m.E_FIND))
    t, p = m.split_read(b1[3:])
    assert t == text and p == b"\x00\x01\x02\x03" and b2 == b"\x00\x00\x80"
    # A flipped checksum, a bad length and a gap are dropped and counted; the
    # next good frame still comes through.
    bad = frame[:-1] + bytes((frame[-1] ^ 1,))
    assert d.decode(bad + b"\xaa\xaa\xaa\x96\x69\x00\x01" + frame[:50]) == []
    assert d.drops.get("checksum") == 1 and d.drops.get("length") == 1 and d.pending()
    d.gap()
    assert d.drops.get("gap") == 1 and not d.pending()
    assert d.decode(m.response(c.OK)) == [b"\x00\x00\x90"]
    b1 = bytes((0, 0, 0x90, 1, 0, 4, 0)) + text
    assert c.read_text(b1, 7 + 256 + 1024) == text
    try:
        c.read_text(b1, 7 + 256 + 1024 + 1)
        raise AssertionError("lengths that do not add up must be refused")
    except ValueError:
        pass


def _rmtree(d):
    import os
    try:
        names = os.listdir(d)
    except OSError:
        return
    for n in names:
        os.remove(d + "/" + n)
    os.rmdir(d)


def case_hmi_frames_into_a_buffer_and_back():
    from wire import hmi
    from wire import hmi_module as m
    buf = bytearray(258)
    n = hmi.dwin_text(buf, 0x1100, "可借5 ok")
    # 5A A5 | LEN 0x11 | 82 | VP 1100 | 可 借 5 space o k in UTF-16BE | FF FF
    assert bytes(buf[:n]) == bytes.fromhex("5aa51182110053ef501f00350020006f006bffff")
    d = m.DwinDecoder()
    d.feed(bytes(buf[:n]))
    n = hmi.dwin_page(buf, 2)
    d.feed(bytes(buf[:n]))
    assert d.next() == ("text", 0x1100, "可借5 ok") and d.next() == ("page", 2)
    # Longer than one frame holds (LEN is one byte): cut, still a valid frame.
    n = hmi.dwin_text(buf, 0x1000, "长" * 300)
    assert n == 258 and buf[2] == 255
    d.feed(bytes(buf[:n]))
    assert d.next() == ("text", 0x1000, "长" * 125) and d.bad == 0
    t = m.TtsDecoder()
    n = hmi.tts_say(buf, "合计12.30元")
    assert buf[:5] == b"\xfd\x00\x13\x01\x03" and n == 5 + 16 + 1
    t.feed(bytes(buf[:n]))
    n = hmi.tts_say(buf, "长" * 300)  # the module takes 200 bytes of text at most
    t.feed(bytes(buf[:n]))
    assert t.next() == ("say", "合计12.30元") and t.next() == ("say", "长" * 100) and t.bad == 0


def case_hmi_self_test_questions_and_answers():
    from wire import hmi_module as m
    from wire import hmi_query as q
    assert q.dwin_read(q.PAGE_NOW, 1) == bytes.fromhex("5aa50483001401")
    d = m.DwinDecoder()
    d.feed(q.dwin_read(q.PAGE_NOW, 1))
    assert d.next() == ("read", 0x0014, 1)
    answer = m.dwin_answer_frame(0x0014, [3])
    assert answer == bytes.fromhex("5aa5068300140100 03".replace(" ", ""))
    # Noise and another address's answer before it are skipped; a cut answer is none.
    assert q.dwin_answer(b"\x00\x5a" + m.dwin_answer_frame(0x1000, [1, 2]) + answer,
                         0x0014) == [3]
    assert q.dwin_answer(answer[:-1], 0x0014) is None
    t = m.TtsDecoder()
    t.feed(q.TTS_STATUS + b"\xfd\x00\x02\x21\x00")  # the second has a bad XOR
    assert t.next() == ("status",) and t.next() is None and t.bad == 1


def case_journal_keeps_events_until_acked_across_reboots():
    from journal import Journal
    d = "jr_case"
    _rmtree(d)
    j = Journal(d)
    epoch = j.epoch
    a = j.append({"t": "ev", "dev": "d", "ev": "returned", "slot": 1})
    b = j.append({"t": "ev", "dev": "d", "ev": "rented", "slot": 2})
    assert (a["seq"], b["seq"]) == (1, 2) and a["epoch"] == epoch
    assert j.ack(epoch, 1) and not j.ack("other-epoch", 2) and not j.ack(epoch, 9)
    j2 = Journal(d)  # reboot
    assert j2.epoch == epoch and j2.pending == [2] and j2.next_seq == 3
    got = []
    assert j2.replay(8, lambda e: got.append(e["slot"]) or True) == 1 and got == [2]
    with open(d + "/events", "a") as f:
        f.write('3 {"t":"ev","dev"')  # power cut mid-write
    j3 = Journal(d)
    assert j3.pending == [2]
    assert j3.ack(epoch, 2) and j3.pending == []
    j4 = Journal(d)  # everything acked: logs gone, numbering goes on
    assert j4.pending == [] and j4.append({"t": "ev", "dev": "d", "ev": "fault", "slot": 0,
                                           "code": "x"})["seq"] == 3
    _rmtree(d)


def case_journal_replay_stops_when_the_link_refuses():
    from journal import Journal
    d = "jr_case3"
    _rmtree(d)
    j = Journal(d)
    for slot in range(6):
        j.append({"t": "ev", "dev": "d", "ev": "returned", "slot": slot})
    j.ack(j.epoch, 2)
    got = []

    def take_three(ev):
        if len(got) == 3:
            return False  # the queue is full
        got.append(ev["seq"])
        return True
    assert j.replay(8, take_three) == 3 and got == [1, 3, 4]  # oldest first, acked skipped
    got.clear()
    assert j.replay(2, lambda e: got.append(e["seq"]) or True) == 2 and got == [1, 3]
    got.clear()
    assert j.replay(8, lambda e: got.append(e["seq"]) or True, [4, 6]) == 2 and got == [4, 6]
    _rmtree(d)


def case_journal_meta_lost_keeps_the_events_epoch():
    import os

    from journal import Journal
    d = "jr_case2"
    _rmtree(d)
    j = Journal(d)
    j.append({"t": "ev", "dev": "d", "ev": "returned", "slot": 1})
    epoch = j.epoch
    os.remove(d + "/meta")
    j2 = Journal(d)
    assert j2.epoch == epoch and j2.pending == [1] and j2.ack(epoch, 1)
    _rmtree(d)


def case_idcard_decoder_wipe_leaves_nothing_of_the_card():
    from wire import idcard, idcard_module
    text = idcard_module.build_text({"name": "张三", "id": "11010519491231002X",
                                     "valid_to": "长期", "address": "黄平县"})
    dec = idcard.SamDecoder(idcard.TEXT_KEEP)
    body = None
    for b in dec.decode(idcard_module.response(idcard.OK, text)):
        body = b
    assert body is not None and b"\x20\x5f" in bytes(dec._buf)  # "张" (U+5F20) is in it
    dec.wipe()
    assert bytes(dec._buf) == bytes(len(dec._buf))


# -- message authentication (wire/auth.py; docs/security.md) ----------------
def case_auth_hmac_matches_rfc4231_test_case_1():
    from wire import auth
    k = auth.Key(b"\x0b" * 20)
    assert k.tag(b"", b"Hi There") == b"b0344c61d8db38535ca8afceaf0bf12b"
    # a key longer than a block is hashed first (RFC 4231 test case 6)
    k = auth.Key(b"\xaa" * 131)
    assert k.tag(b"Test Using Larger Than Block-Size Key - ",
                 b"Hash Key First") == b"60e431591ee0b67f0d8a26aacbf5b77f"


def case_auth_seal_verify_and_every_tamper_refused():
    from wire import auth
    k = auth.Key(bytes(range(32)))
    other = auth.Key(bytes(range(1, 33)))
    data = message.encode({"t": "cmd", "id": 7, "op": "unlock", "slot": 3, "ctr": 1000})
    sealed = auth.seal(k, auth.DOWN, data)
    assert auth.verify(k, auth.DOWN, sealed)
    assert message.decode(sealed)["ctr"] == 1000
    assert not auth.verify(other, auth.DOWN, sealed)  # another device's key
    assert not auth.verify(k, auth.UP, sealed)  # the other direction's label
    assert not auth.verify(k, auth.DOWN, data)  # unsigned
    for i in range(len(sealed)):  # any one byte changed
        b = bytearray(sealed)
        b[i] ^= 0x01
        assert not auth.verify(k, auth.DOWN, bytes(b)), i
    for n in (1, 2, 10, 34, len(sealed) - 1):  # truncated
        assert not auth.verify(k, auth.DOWN, sealed[:n]), n
    assert not auth.verify(k, auth.DOWN, b"")
    assert not auth.verify(k, auth.DOWN, sealed + b" ")
    # the slot changed and a MAC for the new text guessed: still refused
    forged = sealed.replace(b'"slot":3', b'"slot":4')
    assert forged != sealed and not auth.verify(k, auth.DOWN, forged)


def case_command_guard_refuses_forged_replayed_and_reordered():
    from command_guard import CommandGuard
    from wire import auth
    key_hex = "11" * 32
    k = auth.Key(bytes.fromhex(key_hex) if hasattr(bytes, "fromhex") else b"\x11" * 32)

    def cmd(ctr, slot=1):
        return auth.seal(k, auth.DOWN, message.encode(
            {"t": "cmd", "id": ctr, "op": "unlock", "slot": slot, "ctr": ctr}))

    g = CommandGuard(key_hex, "d1", "guard_ctr")
    one, two = cmd(5), cmd(6)
    assert g.refuse(one, message.decode(one)) is None
    why = g.refuse(one, message.decode(one))  # replayed
    assert why is not None
    assert g.answer(message.decode(one), why) == {
        "t": "res", "dev": "d1", "id": 5, "ok": False, "err": "stale_ctr", "ctr": 5}
    bad = one.replace(b'"slot":1', b'"slot":2')
    why = g.refuse(bad, message.decode(bad))  # forged: refused without an answer
    assert why is not None and g.answer(message.decode(bad), why) is None
    three = cmd(8)
    assert g.refuse(three, message.decode(three)) is None
    assert g.refuse(two, message.decode(two)) is not None  # older than the last: reordered
    unsigned = message.encode({"t": "cmd", "id": 9, "op": "unlock", "ctr": 9})
    assert g.refuse(unsigned, message.decode(unsigned)) is not None
    assert g.refused == 4
    # after a "reboot" every counter up to the reserved ceiling counts as used
    g2 = CommandGuard(key_hex, "d1", "guard_ctr")
    assert g2.last >= 8 + 64 - 5
    late = cmd(9)
    assert g2.refuse(late, message.decode(late)) is not None
    fresh = cmd(g2.last + 1)
    assert g2.refuse(fresh, message.decode(fresh)) is None
    # an ack needs a MAC but no counter (replaying one only repeats it)
    ack = auth.seal(k, auth.DOWN, message.encode({"t": "ack", "epoch": "e", "seq": 1}))
    assert g2.refuse(ack, message.decode(ack)) is None
    assert g2.refuse(ack, message.decode(ack)) is None


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


def run_all():
    import gc
    failed = 0
    for fn in CASES:
        gc.collect()  # each case starts from a tidy heap (64K under MicroPython)
        try:
            fn()
            print("ok", fn.__name__)
        except Exception as e:
            failed += 1
            print("FAIL", fn.__name__, repr(e))
    print("%d passed, %d failed" % (len(CASES) - failed, failed))
    return failed


if __name__ == "__main__":
    import sys
    sys.exit(1 if run_all() else 0)
