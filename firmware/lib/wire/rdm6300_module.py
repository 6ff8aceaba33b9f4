# RDM6300-style tag reader frames, the reader module's side: encoding, for the
# emulator (hardware/dock_emulator.py) and tests. wire/rdm6300.py parses them.
from wire.rdm6300 import _nib

_HEX = b"0123456789ABCDEF"


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
    return bytes((0x02,)) + raw + bytes((_HEX[x >> 4], _HEX[x & 15], 0x03))
