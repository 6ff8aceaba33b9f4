# CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): the CRC most UART/RS-485 device
# protocols use; table built once so the per-byte cost is one lookup.
from micropython import const

_POLY = const(0x1021)


def _make_table():
    # 512 bytes (hi, lo per entry): a tuple of ints would take 2 KiB of heap.
    t = bytearray(512)
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ _POLY) if c & 0x8000 else (c << 1)
        t[2 * i] = (c >> 8) & 0xFF
        t[2 * i + 1] = c & 0xFF
    return t


_TABLE = _make_table()


def crc16(data, start=0, end=None, crc=0xFFFF):
    if end is None:
        end = len(data)
    t = _TABLE
    for i in range(start, end):
        j = (((crc >> 8) ^ data[i]) & 0xFF) << 1
        crc = (((crc << 8) & 0xFFFF) ^ (t[j] << 8)) ^ t[j + 1]
    return crc
