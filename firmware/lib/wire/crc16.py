# CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): the CRC most UART/RS-485 device
# protocols use; table built once so the per-byte cost is one lookup.
try:
    from micropython import const
except ImportError:  # CPython: the edge imports this same file
    def const(x):
        return x

_POLY = const(0x1021)


def _make_table():
    t = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ _POLY) if c & 0x8000 else (c << 1)
        t.append(c & 0xFFFF)
    return tuple(t)


_TABLE = _make_table()


def crc16(data, start=0, end=None, crc=0xFFFF):
    if end is None:
        end = len(data)
    t = _TABLE
    for i in range(start, end):
        crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ data[i]) & 0xFF]
    return crc
