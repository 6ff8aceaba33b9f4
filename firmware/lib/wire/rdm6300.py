# 125 kHz tag reader frames, RDM6300 style: STX, 10 ASCII-hex chars (version
# byte + 4-byte tag id), 2 ASCII-hex chars of XOR checksum over those 5 bytes,
# ETX. Sans-IO: feed() one byte at a time, get the 10-char tag id or None.
from micropython import const

STX = const(0x02)
ETX = const(0x03)
FRAME_LEN = const(14)

_HEX = b"0123456789ABCDEF"


def _nib(c):
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


def encode(tag, corrupt=False):
    """Reader frame for a 10-hex-char tag id (used by the emulator)."""
    if len(tag) != 10:
        raise ValueError("tag id must be 10 hex chars")
    raw = tag.upper().encode()
    x = 0
    for i in range(0, 10, 2):
        hi = _nib(raw[i])
        lo = _nib(raw[i + 1])
        if hi < 0 or lo < 0:
            raise ValueError("tag id must be hex")
        x ^= (hi << 4) | lo
    if corrupt:
        x ^= 0x5A
    return bytes((STX,)) + raw + bytes((_HEX[x >> 4], _HEX[x & 15], ETX))


class TagParser:
    def __init__(self):
        self._buf = bytearray(FRAME_LEN)
        self._n = 0
        self.bad = 0  # frames dropped: bad hex, checksum or framing

    def feed(self, c):
        b = self._buf
        if self._n == 0:
            if c == STX:
                b[0] = c
                self._n = 1
            return None
        b[self._n] = c
        self._n += 1
        if self._n < FRAME_LEN:
            if c == STX:  # a new frame started inside this one: resync
                self.bad += 1
                b[0] = c
                self._n = 1
            return None
        self._n = 0
        if c != ETX:
            self.bad += 1
            return None
        x = 0
        for i in range(1, 13, 2):
            hi = _nib(b[i])
            lo = _nib(b[i + 1])
            if hi < 0 or lo < 0:
                self.bad += 1
                return None
            v = (hi << 4) | lo
            if i < 11:
                x ^= v
            elif v != x:
                self.bad += 1
                return None
        return bytes(b[1:11]).decode().upper()
