# The unix port's emulator bus (hardware/sim_bus.py is the other end): one
# loopback socket carries a dock's GPIO and tag-reader UARTs as packets
#   [channel:1][length:1][payload]; channel 0 = GPIO [pin_hi pin_lo value],
#   channel n >= 1 = the bytes of UART n (a tag reader).
# Only devices with a bus (docks) load this module. It is small on purpose: a
# dock on MQTT runs close to the end of its 64K heap.
import asyncio
import socket
import sys

import log

_log = log.get("hal")


class _Bus:
    """The socket, the input levels, and all slots' tag readers:
    read() -> (slot, bytes), as a multiplexed tag port does."""

    def __init__(self, s, n):
        # s: "host:port" of the emulator; n: pins (one-letter names that the
        # interpreter already knows cost a dock no heap)
        host, port = s.rsplit(":", 1)
        sock = socket.socket()
        sock.connect(socket.getaddrinfo(host, int(port))[0][-1])
        sock.setblocking(False)
        self._s = sock
        self._r = asyncio.StreamReader(sock)
        self._buf = bytearray(b"\x00\x03\x00\x00\x00")
        self.inputs = bytearray(n)  # level per pin number: a dict costs 4x
        self.ready = asyncio.Event()
        self.tags = []
        self._wake = asyncio.Event()

    async def _reader(self):
        try:
            while True:
                h = await self._r.readexactly(2)
                payload = await self._r.readexactly(h[1]) if h[1] else b""
                if h[0] == 0:
                    inp = self.inputs
                    for j in range(0, len(payload) - 2, 3):
                        pin = (payload[j] << 8) | payload[j + 1]
                        if pin < len(inp):
                            inp[pin] = payload[j + 2]
                    self.ready.set()
                else:
                    # Tag frames sent at power-on wait for the app; a reader
                    # that falls behind loses frames, as a UART FIFO does.
                    if len(self.tags) < 8:
                        self.tags.append((h[0] - 1, payload))
                    self._wake.set()
        except (EOFError, OSError) as e:
            # The emulator is the hardware: without it the device is dead.
            _log.error("bus lost: %r", e)
            sys.exit(3)

    async def read(self):
        while not self.tags:
            self._wake.clear()
            await self._wake.wait()
        return self.tags.pop(0)

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

    def read(self, s):
        inp = _bus.inputs
        return inp[self.present[s]], inp[self.latched[s]]

    def set_lock(self, s, v):
        _bus.set_pin(self.lock[s], v)


_bus = None


async def connect(s, pins):
    """Open the bus at s ("host:port"); pins: the board's slot pin lists."""
    global _bus
    _bus = _Bus(s, max([max(v) for v in pins.values() if v]) + 1)
    asyncio.create_task(_bus._reader())
    await asyncio.wait_for(_bus.ready.wait(), 5)


def tag_port(n):
    return _bus
