"""Emulated resident ID card security module (SAM) on a serial line: answers
reset, status, SAM id, find, select, read text+photo and additional address
with the frames real modules send (wire.idcard_module), for cards of fictional
people placed on it by tests and the simulator, with faults on demand (no
card, checksum error, card pulled mid-read, SAM self-test failure). It never
logs a card's contents: logs end up in bug reports."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from wire import idcard, idcard_module

from hardware.serial_peer import SerialPeer

log = logging.getLogger("hardware.idcard")

SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"
REGIONS = ("522601", "522622", "330523", "522631", "522636")  # Kaili/Guizhou, Anji
VILLAGES = ("凯里市舟溪镇青曼村", "凯里市三棵树镇南花村", "安吉县递铺街道鲁家村",
            "黄平县旧州镇寨碧村")


@dataclass
class Card:
    name: str
    id_number: str
    gender: str = "1"
    nation: str = "01"
    address: str = ""
    authority: str = "凯里市公安局"
    valid_from: str = "20100101"
    valid_to: str = "长期"
    card_type: str = ""  # "" resident, "J" HK/Macao/Taiwan permit, "I" foreigner
    extra_address: str = ""
    photo: bytes = field(default=b"\x57" * 1024, repr=False)  # WLT blob (opaque)

    def text(self) -> bytes:
        return idcard_module.build_text({
            "name": self.name, "gender": self.gender, "nation": self.nation,
            "birth": self.id_number[6:14], "address": self.address, "id": self.id_number,
            "authority": self.authority, "valid_from": self.valid_from,
            "valid_to": self.valid_to, "reserved": self.card_type})


def fictional_card(rng: random.Random, **over: str) -> Card:
    """A fictional villager: born 1880-1900 (no living person), valid check digit."""
    region = rng.choice(REGIONS)
    birth = f"{rng.randint(1880, 1900)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first17 = f"{region}{birth}{rng.randint(0, 999):03d}"
    number = first17 + idcard.check_char(first17)
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
    card = Card(name=name, id_number=number, gender=rng.choice("12"),
                address=rng.choice(VILLAGES) + f"{rng.randint(1, 60)}号")
    for k, v in over.items():
        setattr(card, k, v)
    return card


class IdCardModule(SerialPeer):
    """The module on the far end of a serial port (a pty from hardware.serial_line)."""

    def __init__(self, port: str, baud: int = 115200) -> None:
        super().__init__(port, baud)
        self.card: Card | None = None
        self.selected = False
        # "checksum", "pull_mid_read", "selftest", "lost_answer" (the next SELECT's
        # answer is lost on the line, once)
        self.fault: str | None = None
        self.reads = 0
        self.dec = idcard.SamDecoder()
        # When the kiosk's poll first found the card now placed (perf_counter):
        # bench/swipe.py splits a swipe's time at it.
        self.found_at: float | None = None

    def place(self, card: Card | None) -> None:
        """Put a card on the reader (None takes it away)."""
        self.card = card
        self.selected = False
        self.found_at = None

    def received(self, data: bytes) -> None:
        dec = self.dec
        for body in dec.decode(data):
            out = self.answer(body[:2], body[2:])
            if out:
                self.send(out)
        if dec.drops.get("checksum"):
            dec.drops.clear()
            self.send(idcard_module.response(idcard_module.E_CHECKSUM))

    def answer(self, cmd: bytes, data: bytes) -> bytes:
        """The module's reply to one command (pure: tests call it directly too)."""
        f = self.fault
        if cmd == idcard_module.RESET:
            return idcard_module.response(idcard.OK)
        if cmd == idcard.STATUS:
            return idcard_module.response(idcard.E_SELFTEST if f == "selftest" else idcard.OK)
        if cmd == idcard_module.SAM_ID:
            return idcard_module.response(idcard.OK, bytes(range(16)))
        if f == "selftest":
            return idcard_module.response(idcard.E_SELFTEST)
        if cmd == idcard.FIND:
            if self.card is None:
                return idcard_module.response(idcard_module.E_FIND)
            if self.found_at is None:
                self.found_at = time.perf_counter()
            return idcard_module.response(idcard.FIND_OK, b"\x00\x00\x00\x00")
        if cmd == idcard.SELECT:
            if self.card is None:
                return idcard_module.response(idcard_module.E_SELECT)
            if f == "lost_answer":
                self.fault = None  # once
                return b""
            self.selected = True
            return idcard_module.response(idcard.OK, bytes(8))
        if cmd == idcard.READ:
            if self.card is None or not self.selected:
                return idcard_module.response(idcard_module.E_READ)
            self.reads += 1
            text = self.card.text()
            photo = self.card.photo
            body = bytes((len(text) >> 8, len(text) & 0xFF, len(photo) >> 8,
                          len(photo) & 0xFF)) + text + photo
            frame = idcard_module.response(idcard.OK, body)
            if f == "checksum":
                frame = frame[:-1] + bytes((frame[-1] ^ 0xFF,))
            elif f == "pull_mid_read":
                self.card = None  # the villager lifted the card half way
                frame = frame[:len(frame) // 2]
            return frame
        if cmd == idcard_module.READ_ADDR:
            if self.card is None or not self.selected:
                return idcard_module.response(idcard_module.E_READ)
            if not self.card.extra_address:
                return idcard_module.response(idcard_module.NO_CONTENT)
            addr = idcard_module.to_ucs2(self.card.extra_address, 70)
            return idcard_module.response(idcard.OK, addr)
        return idcard_module.response(idcard_module.E_COMMAND)
