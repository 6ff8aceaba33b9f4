# Resident ID card security module (SAM) frames, the card's text block, the
# ID number's check digit, masking and the kiosk's lookup token. Sans-IO and
# shared: the kiosk firmware, the emulator and the edge run this same file.
#
#   command:  AA AA AA 96 69 | LEN_H LEN_L | CMD PARA     | DATA | CHK
#   response: AA AA AA 96 69 | LEN_H LEN_L | SW1 SW2 SW3  | DATA | CHK
# LEN counts every byte after itself (CHK included); CHK = XOR of LEN_H..DATA.
import hashlib

from micropython import const

_PRE = b"\xaa\xaa\xaa\x96\x69"
_MAX_LEN = const(1600)  # text+photo+fingerprint answers are 2,322 bytes: not supported

# Commands (CMD, PARA)
RESET = b"\x10\xff"
STATUS = b"\x11\xff"
SAM_ID = b"\x12\xff"
FIND = b"\x20\x01"
SELECT = b"\x20\x02"
READ = b"\x30\x01"  # text + photo
READ_ADDR = b"\x30\x03"  # additional address

# SW3 codes a module answers with
OK = const(0x90)
NO_CONTENT = const(0x91)
FIND_OK = const(0x9F)
E_CHECKSUM = const(0x10)
E_LENGTH = const(0x11)
E_COMMAND = const(0x21)
E_READ = const(0x41)
E_SELFTEST = const(0x60)
E_FIND = const(0x80)
E_SELECT = const(0x81)


def _chk(b, start, end):
    x = 0
    for i in range(start, end):
        x ^= b[i]
    return x


def _frame(head, data):
    n = len(head) + len(data) + 1
    out = bytearray(_PRE)
    out.append(n >> 8)
    out.append(n & 0xFF)
    out += head
    out += data
    out.append(_chk(out, 5, len(out)))
    return bytes(out)


def command(cmd, data=b""):
    """A command frame, e.g. command(FIND)."""
    return _frame(cmd, data)


def response(sw3, data=b"", sw1=0, sw2=0):
    """A response frame (the emulator's side)."""
    return _frame(bytes((sw1, sw2, sw3)), data)


class SamDecoder:
    """feed() bytes, next() -> the frame's body (between LEN and CHK) or None:
    a response body is SW1 SW2 SW3 + data, a command body CMD PARA + data.
    Resyncs on the preamble after a bad length or checksum; every drop is
    counted by reason."""

    def __init__(self, cap=1300):
        self._buf = bytearray()
        self._cap = cap
        self.drops = {}

    def _drop(self, why):
        self.drops[why] = self.drops.get(why, 0) + 1

    def feed(self, data):
        self._buf += data
        if len(self._buf) > self._cap + 8:
            self._drop("overflow")
            self._buf = self._buf[-8:]

    def gap(self):
        if self._buf:
            self._drop("gap")
            self._buf = bytearray()

    def next(self):
        b = self._buf
        while True:
            i = b.find(_PRE)
            if i < 0:
                if len(b) > 4:
                    self._drop("noise")
                    self._buf = b = b[-4:]
                return None
            if i:
                self._drop("noise")
                self._buf = b = b[i:]
            if len(b) < 7:
                return None
            n = (b[5] << 8) | b[6]
            if n < 3 or n > _MAX_LEN:
                self._drop("length")
                self._buf = b = b[1:]
                continue
            if len(b) < 7 + n:
                return None
            if _chk(b, 5, 6 + n) != b[6 + n]:
                self._drop("checksum")
                self._buf = b = b[1:]
                continue
            body = bytes(b[7:6 + n])
            self._buf = b[7 + n:]
            return body


# -- the text block (256 bytes, UCS-2 little endian, space padded) -------------
_FIELDS = (("name", 0, 30), ("gender", 30, 32), ("nation", 32, 36), ("birth", 36, 52),
           ("address", 52, 122), ("id", 122, 158), ("authority", 158, 188),
           ("valid_from", 188, 204), ("valid_to", 204, 220), ("reserved", 220, 256))


def ucs2(b, start, end):
    # MicroPython has no utf-16 codec: decode by hand (the card uses the BMP only).
    out = []
    for i in range(start, end - 1, 2):
        out.append(chr(b[i] | (b[i + 1] << 8)))
    return "".join(out).strip()


def to_ucs2(s, nbytes):
    out = bytearray(nbytes)
    for i in range(nbytes // 2):
        c = ord(s[i]) if i < len(s) else 0x20
        out[2 * i] = c & 0xFF
        out[2 * i + 1] = c >> 8
    return bytes(out)


def parse_text(b):
    """The text block's fields as a dict (values stripped of padding)."""
    if len(b) < 256:
        raise ValueError("text block too short")
    d = {}
    for name, s, e in _FIELDS:
        d[name] = ucs2(b, s, e)
    t = d["reserved"][:1]
    d["card_type"] = "resident" if t in ("", "A") else (
        "foreign_permanent" if t in ("I", "Y") else ("hk_mo_tw_permit" if t == "J" else "other"))
    return d


def build_text(f):
    """The inverse, for the emulator and tests."""
    out = bytearray()
    for name, s, e in _FIELDS:
        out += to_ucs2(f.get(name, ""), e - s)
    return bytes(out)


def split_read(data):
    """(text, photo) from a READ answer's data: text and photo lengths, then both."""
    if len(data) < 4:
        raise ValueError("short read answer")
    tl = (data[0] << 8) | data[1]
    pl = (data[2] << 8) | data[3]
    if len(data) < 4 + tl + pl:
        raise ValueError("truncated read answer")
    return data[4:4 + tl], data[4 + tl:4 + tl + pl]


# -- the 18-digit number (GB 11643, ISO 7064 MOD 11-2) -----------------------
_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def check_char(first17):
    return "10X98765432"[sum([int(first17[i]) * _W[i] for i in range(17)]) % 11]


def _date_ok(s):
    if len(s) != 8 or not s.isdigit():
        return False
    y = int(s[:4])
    m = int(s[4:6])
    d = int(s[6:])
    if y < 1850 or not 1 <= m <= 12 or d < 1:
        return False
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return d <= (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[m - 1]


def check_id(n):
    """None if the number is valid, else a reason: length, digits, region, birth, check."""
    if len(n) != 18:
        return "length"
    if not n[:17].isdigit() or not (n[17].isdigit() or n[17] == "X"):
        return "digits"
    if n[0] == "0":
        return "region"
    if not _date_ok(n[6:14]):
        return "birth"
    if check_char(n[:17]) != n[17]:
        return "check"
    return None


def expired(valid_to, today):
    """today as YYYYMMDD; "长期" (long-term) never expires."""
    if valid_to == "长期":
        return False
    return not _date_ok(valid_to) or valid_to < today


def mask_name(name):
    return name[:1] + "*" * (len(name) - 1) if name else ""


def mask_id(n):
    return n[:1] + "*" * (len(n) - 2) + n[-1:] if len(n) > 2 else "*" * len(n)


# -- the lookup token: HMAC-SHA256(region key, number), made on the kiosk -----
def hmac_sha256(key, msg):
    # MicroPython has no hmac module: RFC 2104 over hashlib.sha256.
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + b"\x00" * (64 - len(key))
    inner = hashlib.sha256(bytes([k ^ 0x36 for k in key]) + msg).digest()
    return hashlib.sha256(bytes([k ^ 0x5C for k in key]) + inner).digest()


def token(region_key, id_number):
    """32 hex chars that identify the person to the backend, not the number."""
    d = hmac_sha256(region_key, id_number.encode())
    return "".join(["%02x" % c for c in d[:16]])
