# Reliable serial link on top of framing: stop-and-wait ARQ with 8-bit sequence
# numbers, acks and retransmit. Sans-IO: the owner feeds received bytes, asks
# poll(now_ms) for bytes to write and recv() for delivered payloads. Clock
# arithmetic comes from the owner (time.ticks_diff on a board: ticks wrap).
from micropython import const

from wire.framing import (FLAG_FIRST, KIND_ACK, KIND_DATA, PAYLOAD_AT,
                          FrameDecoder, FrameError, frame_into, frame_size)

_KIND_MASK = const(0x7F)
# Counters in Link.stats, by index (their names, for reports, are
# wire/names.py LINK_STATS: a dict's keys would cost a 64K device heap).
_TX = const(0)
_RETX = const(1)
_GIVEUP = const(2)
_RX = const(3)
_DUP = const(4)
_QUEUE_FULL = const(5)
_STRAY_ACK = const(6)
_MAX_ACKS = const(8)  # acks waiting to be written; older ones go (their frames come again)


def _diff(t, s):
    return t - s


class Link:
    """max_payload: the largest frame taken in; max_send: the largest sent
    (default the same). Payloads waiting to be sent are copied into a ring of
    queue_bytes, and each frame is built in a buffer of its own, all made here:
    a device's heap fragments until 8K free has no block of a frame's size, and
    an outage, when the queue fills, must not need new blocks."""

    def __init__(self, rto_ms=200, max_tries=8, max_queue=32, diff=_diff, max_payload=1024,
                 max_send=0, queue_bytes=1024):
        self.decoder = FrameDecoder(max_payload)
        self.rto_ms = rto_ms
        self.max_tries = max_tries
        self.max_queue = max_queue
        self.max_send = max_send or max_payload
        self._diff = diff
        self._frame = bytearray(frame_size(self.max_send))
        self._frame_mv = memoryview(self._frame)
        self._ack = bytearray(frame_size(0))
        self._ring = bytearray(queue_bytes)
        self._ring_mv = memoryview(self._ring)
        self._head = 0  # the oldest queued payload's length prefix
        self._used = 0  # bytes of the ring in use (2-byte length + payload each)
        self._queued = 0
        self._inflight = 0  # length of the frame in flight in _frame; 0: none
        self._inflight_seq = 0
        self._sent_at = 0
        self._tries = 0
        self._tx_seq = 0
        self._first = True
        self._rx_seq = -1
        self._acks = []
        self._rx = []
        # Counters (+ the decoder's drops): see _TX.. above.
        self.stats = [0] * 7

    def send(self, payload):
        """Queue a copy of one payload; False (counted) when the queue is full.
        A payload over max_send is our own bug: FrameError."""
        n = len(payload)
        if n > self.max_send:
            raise FrameError("payload too large: %d > %d" % (n, self.max_send))
        cap = len(self._ring)
        if self._queued >= self.max_queue or self._used + 2 + n > cap:
            self.stats[_QUEUE_FULL] += 1
            return False
        ring = self._ring
        at = (self._head + self._used) % cap
        ring[at] = n >> 8
        ring[(at + 1) % cap] = n & 0xFF
        at = (at + 2) % cap
        a = min(n, cap - at)  # the part before the ring's end; the rest wraps
        src = memoryview(payload)
        self._ring_mv[at:at + a] = src[:a]
        if n > a:
            self._ring_mv[0:n - a] = src[a:]
        self._used += 2 + n
        self._queued += 1
        return True

    def queued(self):
        """Payloads waiting to be sent (the one in flight not counted)."""
        return self._queued

    def room(self, n):
        """True when a payload of n bytes would be queued now."""
        return self._queued < self.max_queue and self._used + 2 + n <= len(self._ring)

    def idle(self):
        return not self._inflight and not self._queued and not self._acks

    def receive(self, data):
        # The decoder holds one frame at most: feed what fits, take frames out,
        # repeat, so a burst longer than a frame loses nothing.
        mv = memoryview(data)
        off = 0
        while True:
            took = self.decoder.feed(mv[off:])
            off += took
            got = self._take_frames()
            if off >= len(data):
                return
            if not took and not got:
                self.decoder.overflow()  # cannot happen with a sane decoder; never spin

    def _take_frames(self):
        """Handle every complete frame in the decoder; returns how many."""
        got = 0
        while True:
            fr = self.decoder.next()
            if fr is None:
                return got
            got += 1
            kind, seq, payload = fr
            if kind & _KIND_MASK == KIND_ACK:
                if self._inflight and seq == self._inflight_seq:
                    self._inflight = 0
                else:
                    self.stats[_STRAY_ACK] += 1
                continue
            new = (kind & FLAG_FIRST) or seq != self._rx_seq
            if new and len(self._rx) >= self.max_queue:
                # Not taken, not acked: the peer sends it again once we have
                # room. (A flood must not grow the heap.)
                self.stats[_QUEUE_FULL] += 1
                continue
            if len(self._acks) >= _MAX_ACKS:
                self._acks.pop(0)  # its frame comes again and is acked then
            self._acks.append(seq)
            if new:
                self._rx_seq = seq
                self._rx.append(payload)
                self.stats[_RX] += 1
            else:
                # Our ack was lost and the peer resent: ack again, deliver once.
                self.stats[_DUP] += 1

    def recv(self):
        if self._rx:
            return self._rx.pop(0)
        return None

    def poll(self, now):
        """Bytes to write now, or None. Call until None after each event. What
        it returns is a view of the link's own buffer: write it before the
        next poll()."""
        if self._acks:
            frame_into(self._ack, KIND_ACK, self._acks.pop(0), 0)
            return self._ack
        if self._inflight:
            if self._diff(now, self._sent_at) < self.rto_ms:
                return None
            if self._tries >= self.max_tries:
                # The message layer above re-sends what matters (journaled events).
                self.stats[_GIVEUP] += 1
                self._inflight = 0
            else:
                self._tries += 1
                self._sent_at = now
                self.stats[_RETX] += 1
                return self._frame_mv[:self._inflight]
        if not self._inflight and self._queued:
            kind = KIND_DATA
            if self._first:
                kind |= FLAG_FIRST
                self._first = False
            self._tx_seq = (self._tx_seq + 1) & 0xFF
            self._inflight_seq = self._tx_seq
            self._inflight = frame_into(self._frame, kind, self._tx_seq, self._take())
            self._sent_at = now
            self._tries = 1
            self.stats[_TX] += 1
            return self._frame_mv[:self._inflight]
        return None

    def _take(self):
        """Move the oldest queued payload into the frame buffer; its length."""
        ring = self._ring
        cap = len(ring)
        h = self._head
        n = (ring[h] << 8) | ring[(h + 1) % cap]
        at = (h + 2) % cap
        a = min(n, cap - at)
        self._frame_mv[PAYLOAD_AT:PAYLOAD_AT + a] = self._ring_mv[at:at + a]
        if n > a:
            self._frame_mv[PAYLOAD_AT + a:PAYLOAD_AT + n] = self._ring_mv[0:n - a]
        self._head = (at + n) % cap
        self._used -= 2 + n
        self._queued -= 1
        if not self._queued:
            self._head = self._used = 0  # empty: start at the front, fewer wraps
        return n
