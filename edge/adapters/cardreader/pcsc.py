"""Social-security and bank cards through a PC/SC reader on the Pi (pyscard on pcscd):
select the social-security application, read the social-security number (the
holder's 18-digit ID number) and hand back only what the lookup needs. The
number is validated and turned into the kiosk token here; it is never logged.
APDUs: ../shared/idcard.md (and docs/kiosk.md). Handles 61xx (GET RESPONSE)
and 6Cxx (resend with the card's length) as real cards require."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from smartcard.CardConnection import CardConnection
from smartcard.Exceptions import CardConnectionException, NoCardException
from smartcard.System import readers
from wire import idcard

log = logging.getLogger("edge.pcsc")

AID = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")


class CardReadError(Exception):
    """No reader, no card, or a card that does not answer as a social-security card."""


@dataclass(frozen=True)
class SocialCard:
    token: str
    masked_number: str
    masked_name: str


def _tx(conn: CardConnection, apdu: list[int]) -> bytes:
    data, sw1, sw2 = conn.transmit(apdu)
    if sw1 == 0x61:  # more data: fetch it
        data, sw1, sw2 = conn.transmit([0x00, 0xC0, 0x00, 0x00, sw2])
    elif sw1 == 0x6C:  # wrong Le: the card says how many bytes it has
        data, sw1, sw2 = conn.transmit([*apdu[:4], sw2])
    if (sw1, sw2) != (0x90, 0x00):
        raise CardReadError(f"card answered {sw1:02X}{sw2:02X}")
    return bytes(data)


def _tlv_value(rec: bytes, tag: int) -> bytes:
    if len(rec) < 2 or rec[0] != tag or len(rec) < 2 + rec[1]:
        raise CardReadError("unexpected record layout")
    return rec[2:2 + rec[1]]


@contextmanager
def _card(reader_name: str | None) -> Iterator[CardConnection]:
    """A connection to the card on the (first, or named) reader; a card pulled
    mid-read becomes CardReadError, and the connection is always closed."""
    rs = readers()
    if reader_name is not None:
        rs = [r for r in rs if str(r) == reader_name]
    if not rs:
        raise CardReadError("no PC/SC reader")
    conn = rs[0].createConnection()
    try:
        conn.connect()
    except (NoCardException, CardConnectionException) as exc:
        raise CardReadError("no card on the reader") from exc
    try:
        yield conn
    except CardConnectionException as exc:
        raise CardReadError("card removed during the read") from exc
    finally:
        try:
            conn.disconnect()
        except CardConnectionException:
            pass


PSE = b"2PAY.SYS.DDF01"  # contactless payment system environment
UNIONPAY_AIDS = (bytes.fromhex("A000000333010101"), bytes.fromhex("A000000333010102"))


@dataclass(frozen=True)
class BankCard:
    token: str  # HMAC of the card number: subsidies are paid into these cards
    masked_pan: str


def read_bank_card(region_key: bytes, reader_name: str | None = None) -> BankCard:
    """A UnionPay debit/credit card: PSE, then the application, then the PAN (tag 5A)."""
    with _card(reader_name) as conn:
        return bank_card(conn, region_key)


def bank_card(conn: CardConnection, region_key: bytes) -> BankCard:
    """The exchange itself, on a connected card (whatever it answers: a
    BankCard or CardReadError)."""
    _tx(conn, [0x00, 0xA4, 0x04, 0x00, len(PSE), *PSE])
    for aid in UNIONPAY_AIDS:
        try:
            _tx(conn, [0x00, 0xA4, 0x04, 0x00, len(aid), *aid])
            break
        except CardReadError:
            continue
    else:
        raise CardReadError("not a UnionPay card")
    rec = _tx(conn, [0x00, 0xB2, 0x01, (1 << 3) | 0x04, 0x00])
    i = rec.find(b"\x5a")
    if i < 0 or i + 2 + rec[i + 1] > len(rec):
        raise CardReadError("no card number on the card")
    pan = rec[i + 2:i + 2 + rec[i + 1]].hex().upper().rstrip("F")
    if not 12 <= len(pan) <= 19 or not pan.isdigit():
        raise CardReadError("malformed card number")
    return BankCard(idcard.token(region_key, pan), pan[:4] + "*" * (len(pan) - 8) + pan[-4:])


def read_social_card(region_key: bytes, reader_name: str | None = None) -> SocialCard:
    """Blocking (pyscard): run it in a thread from asyncio code."""
    with _card(reader_name) as conn:
        return social_card(conn, region_key)


def social_card(conn: CardConnection, region_key: bytes) -> SocialCard:
    """The exchange itself, on a connected card (whatever it answers: a
    SocialCard or CardReadError)."""
    _tx(conn, [0x00, 0xA4, 0x04, 0x00, len(AID), *AID])
    _tx(conn, [0x00, 0xA4, 0x02, 0x00, 0x02, 0xEF, 0x06])
    try:
        number = _tlv_value(_tx(conn, [0x00, 0xB2, 0x08, 0x04, 0x00]), 0x08).decode("ascii")
        name = _tlv_value(_tx(conn, [0x00, 0xB2, 0x09, 0x04, 0x00]), 0x09).decode(
            "gbk").strip()
    except UnicodeDecodeError as exc:
        raise CardReadError("a record that is not text") from exc
    why = idcard.check_id(number)
    if why is not None:
        raise CardReadError(f"social-security number fails its check ({why})")
    return SocialCard(idcard.token(region_key, number), idcard.mask_id(number),
                      idcard.mask_name(name))
