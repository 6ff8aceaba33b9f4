# Reliable serial link on top of framing: stop-and-wait ARQ with 8-bit sequence
# numbers, acks and retransmit. Sans-IO: the owner feeds received bytes, asks
# poll(now_ms) for bytes to write and recv() for delivered payloads. Clock
# arithmetic comes from the owner (time.ticks_diff on a board: ticks wrap).
from micropython import const

from wire.framing import (FLAG_FIRST, KIND_ACK, KIND_DATA, FrameDecoder,
                          encode_frame)

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
    def __init__(self, rto_ms=200, max_tries=8, max_queue=32, diff=_diff, max_payload=1024):
        self.decoder = FrameDecoder(max_payload)
        self.rto_ms = rto_ms
        self.max_tries = max_tries
        self.max_queue = max_queue
        self._diff = diff
        self._txq = []
        self._inflight = None
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
        """Queue one payload; False (counted) when the queue is full."""
        if len(self._txq) >= self.max_queue:
            self.stats[_QUEUE_FULL] += 1
            return False
        self._txq.append(payload)
        return True

    def idle(self):
        return self._inflight is None and not self._txq and not self._acks

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
                if self._inflight is not None and seq == self._inflight_seq:
                    self._inflight = None
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
        """Bytes to write now, or None. Call until None after each event."""
        if self._acks:
            return encode_frame(KIND_ACK, self._acks.pop(0))
        if self._inflight is not None:
            if self._diff(now, self._sent_at) < self.rto_ms:
                return None
            if self._tries >= self.max_tries:
                # The message layer above re-sends what matters (journaled events).
                self.stats[_GIVEUP] += 1
                self._inflight = None
            else:
                self._tries += 1
                self._sent_at = now
                self.stats[_RETX] += 1
                return self._inflight
        if self._inflight is None and self._txq:
            payload = self._txq.pop(0)
            kind = KIND_DATA
            if self._first:
                kind |= FLAG_FIRST
                self._first = False
            self._tx_seq = (self._tx_seq + 1) & 0xFF
            self._inflight_seq = self._tx_seq
            self._inflight = encode_frame(kind, self._tx_seq, payload)
            self._sent_at = now
            self._tries = 1
            self.stats[_TX] += 1
            return self._inflight
        return None
