# The peripherals' codecs: the dock's RFID tag reader (wire/rdm6300*), the
# kiosk's ID-card module (wire/idcard*) and its display and voice (wire/hmi*).
from wire import rdm6300, rdm6300_module


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
