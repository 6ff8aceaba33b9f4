# The unix port's serial lines: a path (a pseudo-terminal from
# hardware/serial_line.py) opened raw, with the machine.UART-like API the
# firmware uses. Loaded by hal only on devices that have a serial line.
import asyncio
import select


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
