# The unix port's emulator bus (hardware/sim_bus.py is the other end): one
# loopback socket carries a dock's GPIO and tag-reader UARTs as packets
#   [channel:1][length:1][payload]; channel 0 = GPIO [pin_hi pin_lo value],
#   channel n >= 1 = the bytes of UART n (a tag reader).
import asyncio
import socket
import sys

import log
from micropython import const

_log = log.get("hal")
_MAX_PIN = const(400)  # the unix board's pins are below 400 (hardware/boards)


class BusTags:
    """All slots' tag readers (bus channels 1..n); read() -> (slot, bytes)."""

    def __init__(self):
        self._buf = []
        self._wake = asyncio.Event()

    def _push(self, ch, data):
        if len(self._buf) < 8:  # a reader that falls behind loses frames, as a UART FIFO does
            self._buf.append((ch - 1, data))
        self._wake.set()

    async def read(self):
        while not self._buf:
            self._wake.clear()
            await self._wake.wait()
        return self._buf.pop(0)


class _Bus:
    # One reader task and direct non-blocking sends: a loopback socket to the
    # emulator needs no write queue, and every task and stream costs heap.
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        s = socket.socket()
        s.connect(socket.getaddrinfo(host, int(port))[0][-1])
        s.setblocking(False)
        self._s = s
        self._r = asyncio.StreamReader(s)
        self._buf = bytearray(b"\x00\x03\x00\x00\x00")
        self.inputs = bytearray(_MAX_PIN)  # level per pin number: a dict costs 4x
        self.tags = None
        self.ready = asyncio.Event()

    async def start(self):
        asyncio.create_task(self._reader())

    async def _reader(self):
        try:
            while True:
                h = await self._r.readexactly(2)
                payload = await self._r.readexactly(h[1]) if h[1] else b""
                if h[0] == 0:
                    for j in range(0, len(payload) - 2, 3):
                        pin = (payload[j] << 8) | payload[j + 1]
                        if pin < _MAX_PIN:
                            self.inputs[pin] = payload[j + 2]
                    self.ready.set()
                elif self.tags is not None:
                    self.tags._push(h[0], payload)
        except (EOFError, OSError) as e:
            # The emulator is the hardware: without it the device is dead.
            _log.error("bus lost: %r", e)
            sys.exit(3)

    def set_pin(self, pin, v):
        p = self._buf
        p[2] = pin >> 8
        p[3] = pin & 0xFF
        p[4] = 1 if v else 0
        self._s.send(p)


class SlotIO:
    """Lock outputs and latched/present inputs of a dock's slots (board pin map)."""

    def __init__(self, pins, n):
        self.lock = pins["lock"][:n]
        self.latched = pins["latched"][:n]
        self.present = pins["present"][:n]

    def read(self, i):
        inp = _bus.inputs
        return inp[self.present[i]], inp[self.latched[i]]

    def set_lock(self, i, v):
        _bus.set_pin(self.lock[i], v)


_bus = None


async def connect(addr):
    global _bus
    _bus = _Bus(addr)
    # Tag frames sent at power-on must wait for the app, not be dropped.
    _bus.tags = BusTags()
    await _bus.start()
    await asyncio.wait_for(_bus.ready.wait(), 5)


def tag_port(n):
    return _bus.tags
