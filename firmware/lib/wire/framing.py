# Serial framing shared by the dock firmware and the edge. Sans-IO: bytes in,
# frames out; no clocks, no ports. See docs/protocol.md for the byte layout:
#
#   A5 5A | kind | seq | len_hi len_lo | payload[len] | crc_hi crc_lo
#
# The CRC (CRC-16/CCITT-FALSE) covers kind..payload. A decoder never gets stuck:
# every frame has a size cap, a bad length or CRC resyncs on the next preamble,
# and the owner calls gap() when the line went quiet mid-frame.
from micropython import const

from wire.crc16 import crc16

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

_PREAMBLE = b"\xa5\x5a"

# Drop reasons, counted by the decoder (all "remote" errors: garbage from the peer).
DROP_NOISE = "noise"  # bytes outside any frame
DROP_LENGTH = "length"  # declared length over MAX_PAYLOAD
DROP_KIND = "kind"  # unknown frame kind
DROP_CRC = "crc"  # checksum mismatch
DROP_GAP = "gap"  # partial frame abandoned after an inter-byte gap
DROP_OVERFLOW = "overflow"  # caller fed more than the buffer holds before reading


class FrameError(ValueError):
    # Local misuse (our own code asked for an impossible frame), never peer input.
    pass


def encode_frame(kind, seq, payload=b""):
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise FrameError("payload too large: %d > %d" % (n, MAX_PAYLOAD))
    if kind & _KIND_MASK not in (KIND_DATA, KIND_ACK):
        raise FrameError("bad kind %d" % kind)
    out = bytearray(_HEADER + n + _TRAILER)
    out[0] = _SOF0
    out[1] = _SOF1
    out[2] = kind
    out[3] = seq & 0xFF
    out[4] = n >> 8
    out[5] = n & 0xFF
    out[_HEADER:_HEADER + n] = payload
    c = crc16(out, 2, _HEADER + n)
    out[_HEADER + n] = c >> 8
    out[_HEADER + n + 1] = c & 0xFF
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
        self.frames = 0

    def _drop(self, reason, count=1):
        self.drops[reason] = self.drops.get(reason, 0) + count

    def _discard(self, k):
        # Shift the unread tail to the front (no bytearray deletion on MicroPython).
        n = self._n
        if k >= n:
            self._n = 0
            return
        self._mv[0:n - k] = self._mv[k:n]
        self._n = n - k

    def pending(self):
        return self._n

    def feed(self, data):
        """Append bytes; returns how many were taken (all, unless the buffer is full)."""
        taken = 0
        total = len(data)
        while taken < total:
            room = self._cap - self._n
            if room == 0:
                # Make room by parsing; a full buffer with no frame is garbage.
                if not self._make_room():
                    break
                continue
            k = min(room, total - taken)
            self._mv[self._n:self._n + k] = data[taken:taken + k]
            self._n += k
            taken += k
        return taken

    def _make_room(self):
        # Called only when the buffer is full and the caller did not read frames.
        # Frames that are complete stay for next(); otherwise drop the head.
        if self._complete_frame_at_head():
            return False
        self._drop(DROP_OVERFLOW)
        self._discard(1)
        self._resync()
        return True

    def _complete_frame_at_head(self):
        if self._n < _HEADER or self._buf[0] != _SOF0 or self._buf[1] != _SOF1:
            return False
        ln = (self._buf[4] << 8) | self._buf[5]
        return ln <= self._max and self._n >= _HEADER + ln + _TRAILER

    def _resync(self):
        # Skip to the next preamble; a lone trailing A5 may start one.
        n = self._n
        if n == 0:
            return
        i = self._buf.find(_PREAMBLE, 0, n)
        if i < 0:
            keep = 1 if self._buf[n - 1] == _SOF0 else 0
            if n - keep:
                self._drop(DROP_NOISE, n - keep)
            self._discard(n - keep)
        elif i > 0:
            self._drop(DROP_NOISE, i)
            self._discard(i)

    def gap(self):
        """The line was idle mid-frame: abandon the partial frame (if any)."""
        if self._n:
            self._drop(DROP_GAP)
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
                self._drop(DROP_LENGTH)
                self._discard(2)
                continue
            kind = b[2]
            if kind & _KIND_MASK not in (KIND_DATA, KIND_ACK):
                self._drop(DROP_KIND)
                self._discard(2)
                continue
            end = _HEADER + ln
            if n < end + _TRAILER:
                return None
            c = crc16(b, 2, end)
            if c != ((b[end] << 8) | b[end + 1]):
                self._drop(DROP_CRC)
                self._discard(2)
                continue
            frame = (kind, b[3], bytes(self._mv[_HEADER:end]))
            self._discard(end + _TRAILER)
            self.frames += 1
            return frame
