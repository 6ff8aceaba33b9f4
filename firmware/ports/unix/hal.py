# Hardware layer, unix port (simulator and tests). The edge UART is a serial
# path (a pseudo-terminal); locks, sensors and tag readers are reached through
# the emulator's bus (hardware/sim_bus.py describes the packet format):
#   [channel:1][length:1][payload]; channel 0 = GPIO [pin_hi pin_lo value],
#   channel n >= 1 = the bytes of UART n (a tag reader).
import asyncio
import select
import sys
import time

import log

_log = log.get("hal")
BOARD = "unix"

ticks_ms = time.ticks_ms
ticks_diff = time.ticks_diff


class PtyUart:
    """A serial device path opened raw; read_some() returns as soon as bytes arrive."""

    def __init__(self, path):
        import termios

        self._f = open(path, "r+b")
        termios.setraw(self._f.fileno())
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)
        self._sr = asyncio.StreamReader(self._f)

    async def read_some(self, buf):
        # read(n) on a POSIX fd blocks for all n bytes: take one, drain the rest.
        first = await self._sr.read(1)
        if not first:
            raise OSError("uart closed")
        buf[0] = first[0]
        n = 1
        mv = memoryview(buf)
        while n < len(buf) and self._poll.poll(0):
            if not self._f.readinto(mv[n:n + 1]):
                break
            n += 1
        return n

    async def write(self, data):
        self._f.write(data)


class BusTags:
    """All slots' tag readers (bus channels 1..n); read() -> (slot, bytes)."""

    def __init__(self):
        self._q = []
        self._ev = asyncio.Event()

    def _push(self, ch, data):
        if len(self._q) < 8:  # a reader that falls behind loses frames, as a UART FIFO does
            self._q.append((ch - 1, data))
        self._ev.set()

    async def read(self):
        while not self._q:
            self._ev.clear()
            await self._ev.wait()
        return self._q.pop(0)


class Bus:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.host = host
        self.port = int(port)
        self.inputs = {}
        self.tags = None
        self._out = bytearray()
        self._wake = asyncio.Event()
        self.ready = asyncio.Event()

    async def start(self):
        self._r, self._w = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), 5)
        asyncio.create_task(self._reader())
        asyncio.create_task(self._writer())

    async def _reader(self):
        hdr = bytearray(2)
        try:
            while True:
                h = await self._r.readexactly(2)
                hdr[0] = h[0]
                hdr[1] = h[1]
                payload = await self._r.readexactly(hdr[1]) if hdr[1] else b""
                ch = hdr[0]
                if ch == 0:
                    for j in range(0, len(payload) - 2, 3):
                        self.inputs[(payload[j] << 8) | payload[j + 1]] = payload[j + 2]
                    self.ready.set()
                elif self.tags is not None:
                    self.tags._push(ch, payload)
        except (EOFError, OSError) as e:
            # The emulator is the hardware: without it the device is dead.
            _log.error("bus lost: %r", e)
            sys.exit(3)

    async def _writer(self):
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._out:
                data = bytes(self._out)
                self._out = bytearray()
                self._w.write(data)
                await self._w.drain()

    def set_pin(self, pin, v):
        self._out += bytes((0, 3, pin >> 8, pin & 0xFF, 1 if v else 0))
        self._wake.set()


_bus = None


class SlotIO:
    """Lock outputs and latched/present inputs of a dock's slots (board pin map)."""

    def __init__(self, pins, n):
        self.lock = pins["lock"][:n]
        self.latched = pins["latched"][:n]
        self.present = pins["present"][:n]

    def read(self, i):
        inp = _bus.inputs
        return inp.get(self.present[i], 0), inp.get(self.latched[i], 0)

    def set_lock(self, i, v):
        _bus.set_pin(self.lock[i], v)


class WDT:
    # The unix port has no hardware watchdog; the simulator's supervisor restarts
    # a process that exits. Feeding is kept so the app code is the same.
    def __init__(self, timeout=8000):
        self.timeout = timeout
        self.last = time.ticks_ms()

    def feed(self):
        self.last = time.ticks_ms()


async def init(board, cfg):
    global _bus
    bus = cfg.get("bus")
    if bus:
        _bus = Bus(bus)
        # Tag frames sent at power-on must wait for the app, not be dropped.
        _bus.tags = BusTags()
        await _bus.start()
        await asyncio.wait_for(_bus.ready.wait(), 5)


def uart(name, cfg):
    """The device's serial link to the edge: a pty path from the config."""
    return PtyUart(cfg["uart"])


def tag_port(n):
    return _bus.tags


def reset():
    # A soft reset on the unix port is a process exit; the supervisor restarts us.
    sys.exit(1)
