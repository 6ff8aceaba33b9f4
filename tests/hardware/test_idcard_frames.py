"""The ID-card module's frames, byte for byte against docs/idcard-frames.md,
from the shared codec and from the emulator answering real commands."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from wire import idcard, idcard_module

from hardware.idcard_emulator import IdCardModule, fictional_card

DOC = Path(__file__).resolve().parents[2] / "docs" / "idcard-frames.md"
ROWS = re.findall(r"^\| ([^|]+?) \| (kiosk -> module|module -> kiosk) \| `([0-9A-F ]+)` \|$",
                  DOC.read_text(encoding="utf-8"), re.M)
COMMANDS = {"reset SAM": idcard_module.RESET, "SAM status": idcard.STATUS, "SAM id": idcard_module.SAM_ID,
            "find card": idcard.FIND, "select card": idcard.SELECT, "read text+photo": idcard.READ,
            "read additional address": idcard_module.READ_ADDR}
ANSWERS = {"status OK (90)": (0x90, b""), "find OK (9F)": (0x9F, bytes(4)),
           "find failed, no card (80)": (0x80, b""), "select OK (90 + 8 bytes)": (0x90, bytes(8)),
           "read failed (41)": (0x41, b""), "no additional address (91)": (0x91, b""),
           "SAM self-test failed (60)": (0x60, b""), "checksum error (10)": (0x10, b""),
           "unknown command (21)": (0x21, b"")}


def test_doc_has_every_example() -> None:
    assert len(ROWS) == len(COMMANDS) + len(ANSWERS)


@pytest.mark.parametrize("name,direction,hexbytes", ROWS)
def test_codec_matches_the_doc(name: str, direction: str, hexbytes: str) -> None:
    want = bytes.fromhex(hexbytes)
    if direction == "kiosk -> module":
        got = idcard.command(COMMANDS[name])
    else:
        got = idcard_module.response(*ANSWERS[name])
    assert got == want
    dec = idcard.SamDecoder()
    assert dec.decode(b"\x00junk" + want) == [want[7:-1]]
    assert dec.drops == {"noise": 5}


def _answer(m: IdCardModule, cmd: bytes) -> str:
    return m.answer(cmd, b"").hex(" ").upper()


def test_emulator_answers_as_documented() -> None:
    doc = {name: h for name, _, h in ROWS}
    m = IdCardModule("/dev/null")
    assert _answer(m, idcard.STATUS) == doc["status OK (90)"]
    assert _answer(m, idcard.FIND) == doc["find failed, no card (80)"]
    assert _answer(m, idcard.READ) == doc["read failed (41)"]
    assert _answer(m, b"\x99\x99") == doc["unknown command (21)"]
    m.place(fictional_card(random.Random(1)))
    assert _answer(m, idcard.FIND) == doc["find OK (9F)"]
    assert _answer(m, idcard.SELECT) == doc["select OK (90 + 8 bytes)"]
    assert _answer(m, idcard_module.READ_ADDR) == doc["no additional address (91)"]
    frame = m.answer(idcard.READ, b"")
    assert len(frame) == 1295 and frame[:10] == bytes.fromhex("AAAAAA96690508000090")
    m.fault = "selftest"
    assert _answer(m, idcard.STATUS) == doc["SAM self-test failed (60)"]


def test_emulator_cards_parse_and_validate() -> None:
    rng = random.Random(7)
    for _ in range(50):
        card = fictional_card(rng)
        m = IdCardModule("/dev/null")
        m.place(card)
        m.answer(idcard.SELECT, b"")
        dec = idcard.SamDecoder()
        dec.feed(m.answer(idcard.READ, b""))
        body = dec.next()
        kiosk = idcard.SamDecoder(idcard.TEXT_KEEP)  # as the kiosk reads it: text kept, photo not
        [short] = kiosk.decode(m.answer(idcard.READ, b""))
        assert len(short) == idcard.TEXT_KEEP and kiosk.size == len(body)
        assert idcard.person(idcard.read_text(short, kiosk.size)) == (
            card.name, card.id_number, "长期", True)
        assert body is not None and body[:3] == b"\x00\x00\x90"
        text, photo = idcard_module.split_read(body[3:])
        f = idcard_module.parse_text(text)
        assert (f["name"], f["id"], f["valid_to"]) == (card.name, card.id_number, "长期")
        assert idcard.check_id(f["id"]) is None and f["card_type"] == "resident"
        assert 1880 <= int(f["birth"][:4]) <= 1900 and len(photo) == 1024


def test_emulator_faults() -> None:
    m = IdCardModule("/dev/null")
    m.place(fictional_card(random.Random(2)))
    m.answer(idcard.SELECT, b"")
    m.fault = "checksum"
    dec = idcard.SamDecoder()
    dec.feed(m.answer(idcard.READ, b""))
    assert dec.next() is None and dec.drops.get("checksum") == 1
    m.fault = "pull_mid_read"
    half = m.answer(idcard.READ, b"")
    dec = idcard.SamDecoder()
    dec.feed(half)
    assert dec.next() is None and m.card is None
    dec.gap()
    assert dec.drops.get("gap") == 1
