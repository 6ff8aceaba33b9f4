# Serial framing shared by the dock firmware and the edge. Sans-IO: bytes in,
# frames out; no clocks, no ports. See docs/protocol.md for the byte layout:
#
#   A5 5A | kind | seq | len_hi len_lo | payload[len] | crc_hi crc_lo
#
# The CRC (CRC-16/CCITT-FALSE) covers kind..payload. A decoder never gets stuck:
# every frame has a size cap, a bad length or CRC resyncs on the next preamble,
# and the owner calls gap() when the line went quiet mid-frame.
from micropython import const

_SOF0 = const(0xA5)
_SOF1 = const(0x5A)
_HEADER = const(6)
_TRAILER = const(2)
MAX_PAYLOAD = const(1024)

KIND_DATA = const(0x01)
KIND_ACK = const(0x02)
# Set on the first DATA frame after the sender started: the receiver accepts its
# sequence number whatever it last saw (the peer rebooted).
FLAG_FIRST = const(0x80)
_KIND_MASK = const(0x7F)


# Drop reasons counted in `drops` (all "remote" errors: garbage from the peer):
# "noise" bytes outside any frame, "length" declared length over the cap,
# "kind" unknown frame kind, "crc" checksum mismatch, "gap" partial frame
# abandoned after an inter-byte gap, "overflow" a full buffer with no frame.

# CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): the CRC most UART/RS-485 device
# protocols use. A nibble table (32 bytes) rather than a byte table (512): two
# lookups a byte is cheap at serial speeds, and a 64K device keeps the heap.
_POLY = const(0x1021)


def _make_table():
    t = bytearray(32)  # hi, lo per nibble
    for i in range(16):
        c = i << 12
        for _ in range(4):
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
        b = data[i]
        j = ((crc >> 12) ^ (b >> 4)) << 1
        crc = (((crc << 4) & 0xFFFF) ^ (t[j] << 8)) ^ t[j + 1]
        j = ((crc >> 12) ^ (b & 0xF)) << 1
        crc = (((crc << 4) & 0xFFFF) ^ (t[j] << 8)) ^ t[j + 1]
    return crc


class FrameError(ValueError):
    # Local misuse (our own code asked for an impossible frame), never peer input.
    pass


def frame_size(n):
    """Bytes a frame with an n-byte payload takes on the line."""
    return _HEADER + n + _TRAILER


PAYLOAD_AT = const(6)  # where a frame's payload starts (frame_into)


def frame_into(buf, kind, seq, n):
    """Make buf[0:frame_size(n)] a frame around the n-byte payload already at
    buf[PAYLOAD_AT:]; returns its length. No allocation: a device builds every
    frame it sends in one buffer made at boot (wire.link)."""
    if n > MAX_PAYLOAD or n + _HEADER + _TRAILER > len(buf):
        raise FrameError("payload too large: %d" % n)
    if kind & _KIND_MASK not in (KIND_DATA, KIND_ACK):
        raise FrameError("bad kind %d" % kind)
    buf[0] = _SOF0
    buf[1] = _SOF1
    buf[2] = kind
    buf[3] = seq & 0xFF
    buf[4] = n >> 8
    buf[5] = n & 0xFF
    c = crc16(buf, 2, _HEADER + n)
    buf[_HEADER + n] = c >> 8
    buf[_HEADER + n + 1] = c & 0xFF
    return _HEADER + n + _TRAILER


def encode_frame(kind, seq, payload=b""):
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise FrameError("payload too large: %d > %d" % (n, MAX_PAYLOAD))
    out = bytearray(_HEADER + n + _TRAILER)
    out[_HEADER:_HEADER + n] = payload
    frame_into(out, kind, seq, n)
    return bytes(out)


class FrameDecoder:
    """feed(bytes) then next() until None; each frame is (kind, seq, payload)."""

    def __init__(self, max_payload=MAX_PAYLOAD):
        self._cap = _HEADER + max_payload + _TRAILER
        self._max = max_payload
        self._buf = bytearray(self._cap)
        self._mv = memoryview(self._buf)
        self._n = 0
        self.drops = {}

    def _drop(self, reason, count=1):
        self.drops[reason] = self.drops.get(reason, 0) + count

    def _discard(self, t):
        # Shift the unread tail to the front (no bytearray deletion on MicroPython).
        # (One-letter names that the interpreter already knows cost no heap.)
        n = self._n
        if t >= n:
            self._n = 0
            return
        self._mv[0:n - t] = self._mv[t:n]
        self._n = n - t

    def pending(self):
        return self._n

    def feed(self, data):
        """Append what fits (at most one frame's worth); returns bytes taken.
        Take frames with next() and feed the rest (wire.link.Link.receive)."""
        k = min(self._cap - self._n, len(data))
        self._mv[self._n:self._n + k] = data[:k]
        self._n += k
        return k

    def overflow(self):
        """The buffer is full and next() found no frame: drop a byte, resync."""
        self._drop("overflow")
        self._discard(1)

    def _resync(self):
        # Skip to the next preamble; a lone trailing A5 may start one.
        n = self._n
        if n == 0:
            return
        i = self._buf.find(b"\xa5\x5a", 0, n)
        if i < 0:
            keep = 1 if self._buf[n - 1] == _SOF0 else 0
            if n - keep:
                self._drop("noise", n - keep)
            self._discard(n - keep)
        elif i > 0:
            self._drop("noise", i)
            self._discard(i)

    def gap(self):
        """The line was idle mid-frame: abandon the partial frame (if any)."""
        if self._n:
            self._drop("gap")
            self._n = 0

    def next(self):
        while True:
            self._resync()
            n = self._n
            if n < _HEADER:
                return None
            b = self._buf
            ln = (b[4] << 8) | b[5]
            if ln > self._max:
                self._drop("length")
                self._discard(2)
                continue
            kind = b[2]
            if kind & _KIND_MASK not in (KIND_DATA, KIND_ACK):
                self._drop("kind")
                self._discard(2)
                continue
            end = _HEADER + ln
            if n < end + _TRAILER:
                return None
            c = crc16(b, 2, end)
            if c != ((b[end] << 8) | b[end + 1]):
                self._drop("crc")
                self._discard(2)
                continue
            frame = (kind, b[3], bytes(self._mv[_HEADER:end]))
            self._discard(end + _TRAILER)
            return frame
