# Device side of the serial link to the edge: wire.link (frames, acks,
# retransmit) over a HAL UART, carrying wire.message objects. The app sees
# messages only: send(msg) and an on_message(msg) callback.
import asyncio
import time

from micropython import const

import log
from wire import auth, message
from wire.link import Link

_log = log.get("uplink")
_GAP_MS = const(100)  # a partial frame older than this is abandoned
_RESERVE = const(640)  # wire/names.py KIOSK_MAX_MESSAGE
# What a device sends is small (a sealed event is under 200 bytes). The queue
# holds a hello, a state, a result and about five events: what a reconnect
# sends at once. Both buffers are made at boot (wire/link.py says why).
_SEND_MAX = const(256)
_QUEUE_BYTES = const(1536)


class SerialUplink:
    def __init__(self, uart, guard, on_message, on_connect=None, max_payload=256):
        self.uart = uart
        self.guard = guard  # lib/command_guard.py: only the edge's messages pass
        self.on_message = on_message
        self.on_connect = on_connect
        # A dock gets only commands and acks (under 100 bytes): 256 is plenty; a
        # kiosk gets fund records and passes 1024. The edge accepts up to 1024.
        self.link = Link(max_queue=16, diff=time.ticks_diff, max_payload=max_payload,
                         max_send=_SEND_MAX, queue_bytes=_QUEUE_BYTES)
        self.bad = 0  # undecodable messages from the edge
        self._buf = bytearray(64)
        # A kiosk's answers need one free block of up to 640 bytes when they
        # arrive, and hours of swipes fragment a 64K heap until 8K free has no
        # such hole. A block is held in reserve and let go when a message finds
        # no room; tick() makes it again. (0: a dock, whose messages are small.)
        self._reserve = bytearray(_RESERVE) if max_payload > 256 else 0  # type: bytearray | int | None
        self._wake = asyncio.Event()
        self._last_rx = 0
        self.connected = True  # a serial line has no session; frames are retried

    def send(self, msg):
        """Queue msg for the edge; False when the queue is full (the app's
        journal resends events; the next state report supersedes a lost one)."""
        # Sealed with the device's key: a message the edge can trust came
        # from this device (docs/security.md).
        ok = self.link.send(auth.seal(self.guard.key, auth.UP, message.encode(msg)))
        self._wake.set()
        return ok

    def room(self):
        """True when the queue has room for an event: the app sends its
        journal's backlog only as fast as the line takes it."""
        return self.link.room(_SEND_MAX)

    async def run(self):
        if self.on_connect:
            self.on_connect()
        asyncio.create_task(self._writer())
        await self._reader()

    async def _reader(self):
        buf = self._buf
        mv = memoryview(buf)
        link = self.link
        while True:
            n = await self.uart.readinto(buf)
            self._last_rx = time.ticks_ms()
            try:
                link.receive(mv[:n])
            except MemoryError as e:
                # No block for the payload's copy: the frame stays in the
                # decoder. Let the reserve go and take the frame again; failing
                # that, it is taken with the next bytes (the edge resends until
                # it hears our ack). The link must not die of it.
                try:
                    if not self._reserve:
                        raise e
                    self._reserve = None
                    link.receive(b"")
                    _log.info("heap fragmented: a message took the reserve block")
                except MemoryError as e2:
                    self.bad += 1
                    _log.warning("no heap for a message from edge: %r", e2)
            while True:
                payload = link.recv()
                if payload is None:
                    break
                try:
                    msg = message.decode(payload)
                except (ValueError, MemoryError) as e:
                    # MemoryError: the heap had no block for it just now; the
                    # link must live on (the app's request times out and retries).
                    payload = None
                    self.bad += 1
                    _log.warning("dropped message from edge: %r", e)
                    continue
                if not self.guard.admit(payload, msg, self.send):
                    continue
                try:
                    self.on_message(msg)
                except Exception as e:  # the app's bug must not kill the link
                    _log.exc(e, "on_message")
            self._wake.set()

    async def _writer(self):
        link = self.link
        while True:
            out = link.poll(time.ticks_ms())
            if out is not None:
                await self.uart.write(out)
                continue
            self._wake.clear()
            await self._wake.wait()

    def tick(self, now):
        """Called by the app's loop: retransmit timers and the inter-byte gap."""
        link = self.link
        if self._reserve is None:  # used: hold a block again for the next answer
            try:
                self._reserve = bytearray(_RESERVE)
            except MemoryError:
                pass
        if link.decoder.pending() and time.ticks_diff(now, self._last_rx) > _GAP_MS:
            link.decoder.gap()
        if not link.idle():
            self._wake.set()
