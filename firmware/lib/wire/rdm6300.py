# 125 kHz tag reader frames, RDM6300 style: _STX, 10 ASCII-hex chars (version
# byte + 4-byte tag id), 2 ASCII-hex chars of XOR checksum over those 5 bytes,
# _ETX. Sans-IO: feed() one byte at a time, get the 10-char tag id or None.
# The reader module's side (encoding frames, for the emulator) is
# wire/rdm6300_module.py: a dock does not load it.
from micropython import const

_STX = const(0x02)
_ETX = const(0x03)
_FRAME_LEN = const(14)

def _nib(c):
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


class TagParser:
    """One parser for n readers (one per slot): feed(slot, byte). A single
    buffer for all slots keeps a 12-slot dock's heap small."""

    def __init__(self, n=1):
        self._buf = bytearray(_FRAME_LEN * n)
        self._pos = bytearray(n)
        self.bad = 0  # frames dropped: bad hex, checksum or framing

    def feed(self, slot, c):
        b = self._buf
        base = slot * _FRAME_LEN
        n = self._pos[slot]
        if n == 0:
            if c == _STX:
                b[base] = c
                self._pos[slot] = 1
            return None
        b[base + n] = c
        n += 1
        if n < _FRAME_LEN:
            if c == _STX:  # a new frame started inside this one: resync
                self.bad += 1
                n = 1
            self._pos[slot] = n
            return None
        self._pos[slot] = 0
        if c != _ETX:
            self.bad += 1
            return None
        x = 0
        for i in range(base + 1, base + 13, 2):
            hi = _nib(b[i])
            lo = _nib(b[i + 1])
            if hi < 0 or lo < 0:
                self.bad += 1
                return None
            v = (hi << 4) | lo
            if i < base + 11:
                x ^= v
            elif v != x:
                self.bad += 1
                return None
        return bytes(b[base + 1:base + 11]).decode().upper()
