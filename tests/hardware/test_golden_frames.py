"""Every row of docs/peripheral-frames.md, byte for byte: the device's codec
makes it (or reads it), the emulators' half reads it (or makes it), and the
checksum and text encoding agree with Python's standard library, so a bug
both halves share cannot hide."""

from __future__ import annotations

import binascii
import re
from functools import reduce
from pathlib import Path

import pytest
from wire import framing, hmi, hmi_module, hmi_query, rdm6300, rdm6300_module

DOC = Path(__file__).resolve().parents[2] / "docs" / "peripheral-frames.md"
ROWS = {name: bytes.fromhex(hexbytes) for name, hexbytes in re.findall(
    r"^\| ([^|]+?) \| [a-z ]+(?:-> [a-z ]+)? \| `([0-9A-F ]+)` \|$",
    DOC.read_text(encoding="utf-8"), re.M)}
TAGS = {"tag 0415AB91C7": "0415AB91C7", "tag 1A2B3C4D5E": "1A2B3C4D5E",
        "tag 0000000000": "0000000000"}
TEXTS = {"text VP 1000 可借3": (0x1000, "可借3"), "text VP 1100 OK": (0x1100, "OK"),
         "text VP 1200 合计：276.45元": (0x1200, "合计：276.45元")}
SAYS = {"say 您好": "您好", "say 请刷身份证": "请刷身份证"}
LINK = {"data seq 0, first, {\"t\":\"x\"}": (0x81, 0, b'{"t":"x"}'),
        "data seq 1, {}": (0x01, 1, b"{}"), "data seq 255, hi": (0x01, 255, b"hi"),
        "ack seq 0": (0x02, 0, b""), "ack seq 7": (0x02, 7, b"")}
OTHER = ("tag 0415AB91C7, checksum damaged", "page 2", "read VP 0014, 1 word", "page now is 2",
         "state?")


def _xor(b: bytes) -> int:
    return reduce(lambda a, c: a ^ c, b, 0)


def test_the_doc_has_every_example() -> None:
    assert sorted(ROWS) == sorted([*TAGS, *TEXTS, *SAYS, *LINK, *OTHER])


@pytest.mark.parametrize("name", sorted(TAGS))
def test_tag_frames(name: str) -> None:
    frame, tag = ROWS[name], TAGS[name]
    assert rdm6300_module.encode(tag) == frame  # the reader's side (the dock emulator)
    parser = rdm6300.TagParser(2)
    got = [parser.feed(1, c) for c in frame]
    assert got[-1] == tag and parser.bad == 0 and got[:-1] == [None] * 13
    assert int(frame[11:13], 16) == _xor(bytes.fromhex(tag))  # independent


def test_a_damaged_tag_frame_is_dropped_and_counted() -> None:
    frame = ROWS["tag 0415AB91C7, checksum damaged"]
    assert rdm6300_module.encode("0415AB91C7", corrupt=True) == frame
    parser = rdm6300.TagParser(1)
    assert [parser.feed(0, c) for c in frame] == [None] * 14 and parser.bad == 1


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_display_text_frames(name: str) -> None:
    vp, text = TEXTS[name]
    buf = bytearray(300)
    n = hmi.dwin_text(buf, vp, text)
    assert bytes(buf[:n]) == ROWS[name]
    assert ROWS[name][2] == n - 3  # LEN: the bytes after itself
    assert ROWS[name][6:-2] == text.encode("utf-16-be")  # independent
    dec = hmi_module.DwinDecoder()
    dec.feed(b"\x00\x5a" + ROWS[name])
    assert dec.next() == ("text", vp, text)


def test_display_page_and_read_frames() -> None:
    buf = bytearray(16)
    assert bytes(buf[:hmi.dwin_page(buf, 2)]) == ROWS["page 2"]
    assert hmi_query.dwin_read(0x0014, 1) == ROWS["read VP 0014, 1 word"]
    assert hmi_module.dwin_answer_frame(0x0014, [2]) == ROWS["page now is 2"]
    assert hmi_query.dwin_answer(b"\x01" + ROWS["page now is 2"], 0x0014) == [2]
    dec = hmi_module.DwinDecoder()
    dec.feed(ROWS["page 2"] + ROWS["read VP 0014, 1 word"])
    assert dec.next() == ("page", 2)
    assert dec.next() == ("read", 0x0014, 1)


@pytest.mark.parametrize("name", sorted(SAYS))
def test_voice_frames(name: str) -> None:
    text, frame = SAYS[name], ROWS[name]
    buf = bytearray(220)
    assert bytes(buf[:hmi.tts_say(buf, text)]) == frame
    assert frame[-1] == _xor(frame[:-1]) and (frame[1] << 8 | frame[2]) == len(frame) - 3
    assert frame[5:-1] == text.encode("utf-16-be")  # independent
    dec = hmi_module.TtsDecoder()
    dec.feed(frame + ROWS["state?"])
    assert dec.next() == ("say", text)
    assert dec.next() == ("status",)
    assert ROWS["state?"] == hmi_query.TTS_STATUS


@pytest.mark.parametrize("name", sorted(LINK))
def test_serial_link_frames(name: str) -> None:
    kind, seq, payload = LINK[name]
    frame = ROWS[name]
    assert framing.encode_frame(kind, seq, payload) == frame
    crc = binascii.crc_hqx(frame[2:-2], 0xFFFF)  # CRC-16/CCITT-FALSE, independent
    assert frame[-2:] == crc.to_bytes(2, "big")
    dec = framing.FrameDecoder()
    dec.feed(b"\x00" + frame)
    assert dec.next() == (kind, seq, payload)
