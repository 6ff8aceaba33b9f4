# Resident ID card security module (SAM): the reader's side. Command frames, a
# streaming answer decoder, the card's text block, the ID number's check
# digit, masking and the kiosk's lookup token. Sans-IO and shared: the kiosk
# firmware and the edge's USB reader run this file; the module's side (answers,
# building text blocks) is wire/idcard_module.py, which a kiosk never loads.
#
#   command:  AA AA AA 96 69 | LEN_H LEN_L | CMD PARA     | DATA | CHK
#   response: AA AA AA 96 69 | LEN_H LEN_L | SW1 SW2 SW3  | DATA | CHK
# LEN counts every byte after itself (CHK included); CHK = XOR of LEN_H..DATA.
import binascii
import hashlib

from micropython import const

_MAX_LEN = const(1600)  # text+photo+fingerprint answers are 2,322 bytes: not supported
TEXT_KEEP = const(263)  # SW1-3, the two lengths, the 256-byte text: what a kiosk keeps

# Commands (CMD, PARA) a reader sends
STATUS = b"\x11\xff"
FIND = b"\x20\x01"
SELECT = b"\x20\x02"
READ = b"\x30\x01"  # text + photo

# SW3 codes a reader acts on (wire/idcard_module.py lists every code)
OK = const(0x90)
FIND_OK = const(0x9F)
E_SELFTEST = const(0x60)


def frame(head, data=b""):
    """AA AA AA 96 69, LEN, head (CMD PARA or SW1-3), data, CHK."""
    n = len(head) + len(data) + 1
    out = bytearray(b"\xaa\xaa\xaa\x96\x69")
    out.append(n >> 8)
    out.append(n & 0xFF)
    out += head
    out += data
    x = 0
    for i in range(5, len(out)):
        x ^= out[i]
    out.append(x)
    return bytes(out)


def command(cmd, data=b""):
    """A command frame, e.g. command(FIND)."""
    return frame(cmd, data)


class SamDecoder:
    """Streaming frame decoder with a fixed buffer. feed(bytes) -> how many it
    took (it stops after a complete frame); next() -> a view of that frame's body
    (between LEN and CHK: SW1 SW2 SW3 + data, or CMD PARA + data) or None.
    Only the first `keep` body bytes are stored; the rest is checksummed and
    let go, so a kiosk (keep=TEXT_KEEP) never holds the 1K photo. `size` is the
    last body's full length. Every dropped frame is counted by reason.
    (Attribute and argument names are few on purpose: each costs kiosk heap.)"""

    def __init__(self, n=_MAX_LEN):
        self._buf = bytearray(n)
        self._mv = memoryview(self._buf)
        self._cap = n  # body bytes kept
        self._st = 0  # 0-4 preamble bytes matched, 5-6 length, 7 body, 8 CHK, 9 ready
        self._n = 0  # body length
        self._i = 0  # body bytes seen
        self._x = 0  # XOR so far
        self.size = 0
        self.drops = {}

    def _drop(self, reason):
        self.drops[reason] = self.drops.get(reason, 0) + 1
        self._st = 0

    def pending(self):
        """True while a frame is part way in."""
        return 0 < self._st < 9

    def gap(self):
        """The line went quiet: a partial frame is abandoned."""
        if self.pending():
            self._drop("gap")

    def feed(self, data):
        if self._st == 9:
            return 0  # take next() first
        took = 0
        for c in data:
            took += 1
            st = self._st
            if st < 5:
                if c == (0xAA if st < 3 else (0x96 if st == 3 else 0x69)):
                    self._st = st + 1
                elif c == 0xAA:
                    self._st = 3 if st == 3 else 1  # AA AA AA AA...: still a start
                else:
                    self._st = 0
                    self.drops["noise"] = self.drops.get("noise", 0) + 1
            elif st == 5:
                self._n = c << 8
                self._x = c
                self._st = 6
            elif st == 6:
                n = self._n | c
                self._x ^= c
                if n < 3 or n > _MAX_LEN:
                    self._drop("length")
                    continue
                self._n = n - 1  # body bytes, CHK excluded
                self._i = 0
                self._st = 7
            elif st == 7:
                i = self._i
                if i < self._cap:
                    self._buf[i] = c
                self._x ^= c
                self._i = i + 1
                if i + 1 == self._n:
                    self._st = 8
            else:
                if c != self._x:
                    self._drop("checksum")
                    continue
                self._st = 9
                self.size = self._n
                return took
        return took

    def next(self):
        """The body as a view into the decoder's buffer: good until the next feed()."""
        if self._st != 9:
            return None
        self._st = 0
        return self._mv[:min(self.size, self._cap)]

    def wipe(self):
        """Zero the buffer: a card's text block must not outlive its read."""
        b = self._buf
        for i in range(len(b)):
            b[i] = 0

    def decode(self, data):
        """Every complete frame's body in data, in order (for callers with heap to spare)."""
        out = []
        mv = memoryview(data)
        off = 0
        while off < len(data):
            off += self.feed(mv[off:])
            body = self.next()
            if body is not None:
                out.append(bytes(body))
        return out


# Reading a card on the reader, written once for both readers (the kiosk's
# UART driver, the Pi's USB reader): each step's command, its timeout in ms,
# and how often it is sent again when no answer comes at all (a frame lost on
# a busy line is not a bad card; a partial answer then silence is a card
# pulled away, never retried).
READ_STEPS = ((SELECT, 400, 1), (READ, 1500, 0))


def step_failed(cmd, status):
    """None if the step's answer (its SW3) lets the read go on, else why it
    failed: "pulled", "module" (its self-test failed) or "unreadable"."""
    if status == OK:
        return None
    if cmd == SELECT:
        return "pulled"
    return "module" if status == E_SELFTEST else "unreadable"


def read_text(b, n):
    """The 256-byte text block from a READ answer's body b (SW1-3 first) whose
    full length was n (SamDecoder.size): text and photo lengths must add up."""
    if len(b) < 7:
        raise ValueError("short read answer")
    tl = (b[3] << 8) | b[4]
    pl = (b[5] << 8) | b[6]
    if n != 7 + tl + pl or tl < 256 or len(b) < 263:
        raise ValueError("read answer lengths do not add up")
    return b[7:263]


# -- the text block (256 bytes, UCS-2 little endian, space padded) -------------
def ucs2(b, start, end):
    """Decode b[start:end] (UCS-2LE, the BMP only) to a stripped str.
    MicroPython has no utf-16 codec, and chr() or a str's characters one by one
    would intern every character for good (a name's, too): go through UTF-8."""
    out = bytearray()
    for i in range(start, end - 1, 2):
        c = b[i] | (b[i + 1] << 8)
        if c < 0x80:
            out.append(c)
            continue
        if 0xD800 <= c < 0xE000:
            c = 0xFFFD  # a lone surrogate half is not text
        if c < 0x800:
            out.append(0xC0 | (c >> 6))
        else:
            out.append(0xE0 | (c >> 12))
            out.append(0x80 | ((c >> 6) & 0x3F))
        out.append(0x80 | (c & 0x3F))
    return str(out, "utf-8").strip()


def person(text):
    """(name, number, valid_to, resident) from a text block: all a kiosk needs.
    The reserved field's first letter tells the card type: "" or "A" is a
    resident card, "J" a HK/Macao/Taiwan permit, "I"/"Y" a foreigner's card."""
    if len(text) < 256:
        raise ValueError("text block too short")
    t = ucs2(text, 220, 222)
    return ucs2(text, 0, 30), ucs2(text, 122, 158), ucs2(text, 204, 220), t in ("", "A")


# -- the 18-digit number (GB 11643, ISO 7064 MOD 11-2) -----------------------
def check_char(s):
    """The check character for the first 17 digits s (bytes, not s[i]: a
    one-character str is interned on MicroPython)."""
    w = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    b = s.encode()
    k = sum([(b[i] - 48) * w[i] for i in range(17)]) % 11
    return "10X98765432"[k:k + 1]


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
    if not n[:17].isdigit() or n[17:] not in "0123456789X":
        return "digits"
    if n.startswith("0"):
        return "region"
    if not _date_ok(n[6:14]):
        return "birth"
    if check_char(n[:17]) != n[17:]:
        return "check"
    return None


def expired(s, now):
    """s: the card's valid-to date; now: today as YYYYMMDD; "长期" (long-term) never expires."""
    if s == "长期":
        return False
    return not _date_ok(s) or s < now


def mask_name(name):
    return name[:1] + "*" * (len(name) - 1) if name else ""


def mask_id(n):
    return n[:1] + "*" * (len(n) - 2) + n[-1:] if len(n) > 2 else "*" * len(n)


# -- the lookup token: HMAC-SHA256(region key, number), made on the kiosk -----
def token(key, n):
    """32 hex chars that identify the person to the backend, not the number n:
    the first half of HMAC-SHA256(region key, n). MicroPython has no hmac
    module, so this is RFC 2104 over hashlib.sha256."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    pad = bytearray(64)  # the key, zero padded, XORed in place: no 64-item lists
    pad[:len(key)] = key
    for i in range(64):
        pad[i] ^= 0x36
    h = hashlib.sha256(pad)
    h.update(n.encode())
    inner = h.digest()
    for i in range(64):
        pad[i] ^= 0x36 ^ 0x5C
    h = hashlib.sha256(pad)
    h.update(inner)
    return binascii.hexlify(h.digest()[:16]).decode()
