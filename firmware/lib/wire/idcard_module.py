# Resident ID card security module: the module's side of wire/idcard.py.
# Answer frames with every status code a module sends, and the whole text block
# (all fields, both ways). Used by the module emulator, the edge and tests; the
# kiosk firmware reads cards with wire/idcard.py alone and never loads this.
from micropython import const

from wire.idcard import FIND, OK, READ, SELECT, STATUS, frame  # noqa: F401 (re-exported)

RESET = b"\x10\xff"
SAM_ID = b"\x12\xff"
READ_ADDR = b"\x30\x03"  # additional address

# SW3 codes a module answers with (OK 0x90, FIND_OK 0x9F, E_SELFTEST 0x60 are in wire.idcard)
NO_CONTENT = const(0x91)
E_CHECKSUM = const(0x10)
E_LENGTH = const(0x11)
E_COMMAND = const(0x21)
E_READ = const(0x41)
E_FIND = const(0x80)
E_SELECT = const(0x81)


def response(sw3, data=b"", sw1=0, sw2=0):
    """A response frame."""
    return frame(bytes((sw1, sw2, sw3)), data)


FIELDS = (("name", 0, 30), ("gender", 30, 32), ("nation", 32, 36), ("birth", 36, 52),
          ("address", 52, 122), ("id", 122, 158), ("authority", 158, 188),
          ("valid_from", 188, 204), ("valid_to", 204, 220), ("reserved", 220, 256))


def to_ucs2(s, nbytes):
    out = bytearray(nbytes)
    for i in range(nbytes // 2):
        c = ord(s[i]) if i < len(s) else 0x20
        out[2 * i] = c & 0xFF
        out[2 * i + 1] = c >> 8
    return bytes(out)


def parse_text(b):
    """Every field of a text block as a dict (padding stripped), plus card_type."""
    from wire.idcard import ucs2

    if len(b) < 256:
        raise ValueError("text block too short")
    d = {}
    for name, s, e in FIELDS:
        d[name] = ucs2(b, s, e)
    t = d["reserved"][:1]
    d["card_type"] = "resident" if t in ("", "A") else (
        "foreign_permanent" if t in ("I", "Y") else ("hk_mo_tw_permit" if t == "J" else "other"))
    return d


def build_text(f):
    """The text block for a dict of fields (missing ones are blank)."""
    out = bytearray()
    for name, s, e in FIELDS:
        out += to_ucs2(f.get(name, ""), e - s)
    return bytes(out)


def split_read(data):
    """(text, photo) from a whole READ answer's data: both lengths, then both."""
    if len(data) < 4:
        raise ValueError("short read answer")
    tl = (data[0] << 8) | data[1]
    pl = (data[2] << 8) | data[3]
    if len(data) < 4 + tl + pl:
        raise ValueError("truncated read answer")
    return data[4:4 + tl], data[4 + tl:4 + tl + pl]
