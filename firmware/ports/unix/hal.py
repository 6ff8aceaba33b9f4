# Hardware layer, unix port (simulator and tests). Serial lines are paths (a
# pseudo-terminal each); a dock's locks, sensors and tag readers are reached
# through the emulator's bus (bus.py), loaded only by devices that have one:
# a kiosk has none, and every module loaded costs heap.
import asyncio
import select
import sys
import time

ticks_ms = time.ticks_ms
ticks_diff = time.ticks_diff


class PtyUart:
    """A serial device path opened raw; readinto() returns as soon as bytes arrive."""

    def __init__(self, path):
        import termios

        self._s = open(path, "r+b")
        termios.setraw(self._s.fileno())
        self._r = None  # made on the first read: a display's line is only written

    async def readinto(self, buf):
        if self._r is None:
            self._poll = select.poll()
            self._poll.register(self._s, select.POLLIN)
            self._r = asyncio.StreamReader(self._s)
        # read(n) on a POSIX fd blocks for all n bytes: take one, drain the rest.
        first = await self._r.read(1)
        if not first:
            raise OSError("uart closed")
        buf[0] = first[0]
        n = 1
        mv = memoryview(buf)
        while n < len(buf) and self._poll.poll(0):
            if not self._s.readinto(mv[n:n + 1]):
                break
            n += 1
        return n

    async def write(self, data):
        # Done with data on return: callers reuse their frame buffers.
        self._s.write(data)


class WDT:
    # The unix port has no hardware watchdog; the simulator's supervisor restarts
    # a process that exits. Feeding is kept so the app code is the same.
    def __init__(self, timeout=8000):
        pass

    def feed(self):
        pass


SlotIO = None  # set by init() on a device with a bus: locks and sensors
tag_port = None  # likewise: tag_port(n) -> the slots' tag readers


async def init(board, cfg):
    global SlotIO, tag_port
    addr = cfg.get("bus")
    if addr:
        import bus

        await bus.connect(addr, board["slots"])
        SlotIO = bus.SlotIO
        tag_port = bus.tag_port


def uart(name, cfg):
    """A serial line from the config: "edge" is cfg["uart"], others cfg[name + "_uart"]."""
    return PtyUart(cfg["uart"] if name == "edge" else cfg[name + "_uart"])


def reset():
    # A soft reset on the unix port is a process exit; the supervisor restarts us.
    sys.exit(1)
