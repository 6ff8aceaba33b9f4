# The ESP32-S3 port's `machine` module, emulated under the MicroPython unix port
# (never shipped: on a board these classes are in the firmware's C code). It lets
# the board's own hal (firmware/ports/esp32s3/hal.py) run unchanged in the
# simulator and the tests. What it is wired to comes from board_wiring.json in
# the device's folder (hardware/esp32s3_board.py writes it):
#   "bus":  host:port of the board emulator: GPIO levels, I2C transactions, the
#           watchdog and the Wi-Fi radio (packets [channel][length][payload]);
#   "uart": UART id -> the pseudo-terminal its peer (a module's emulator) holds;
#   "pins": every GPIO the board file owns.
# It refuses what the port (or the board) would: a GPIO the chip lacks or the
# board file does not own, a UART id above 2, two drivers on one pin. Only what
# the board's hal and drivers call is here: every function costs the emulated
# device heap that a chip keeps in flash (hardware/sim/spec.py allows for it).
import asyncio
import io
import json
import select
import socket
import sys
import termios

from micropython import const

_GPIO = const(0)
_I2C = const(0xF0)
_WDT = const(0xF1)
_WIFI = const(0xF2)
_GET_FILENO = const(10)  # MP_STREAM_GET_FILENO: poll() asks a stream for its fd
_POLL = const(3)  # MP_STREAM_POLL: asked of a stream that gave no fd
_EINVAL = const(22)
_ENODEV = const(19)

WDT_RESET = const(3)
PWRON_RESET = const(1)

with open("board_wiring.json") as _f:
    _wiring = json.load(_f)
del _f
_owned = set(_wiring["pins"])
_claims = {}  # pin -> what drives it ("Pin", "UART1", "I2C0"): one driver per pin


def _claim(pin, who):
    if isinstance(pin, Pin):  # a Pin handed to a driver becomes the driver's
        _claims.pop(pin._id, None)
        pin = pin._id
    if not (0 <= pin <= 21 or 26 <= pin <= 48):
        raise ValueError("invalid pin")  # the S3 has no GPIO 22-25, none above 48
    if pin not in _owned:
        raise ValueError("GPIO%d is not on this board (board file)" % pin)
    held = _claims.get(pin)
    if held is not None and held != who:
        raise ValueError("GPIO%d is already driven by %s" % (pin, held))
    _claims[pin] = who


class _Bus:
    """The socket to the board emulator. Packets are read whole, either by the
    pump task or inside an I2C transaction, which waits for its answer as the
    chip's bus would (a few hundred microseconds on a real board)."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        s = socket.socket()
        s.connect(socket.getaddrinfo(host, int(port))[0][-1])
        self.s = s
        self._poll = select.poll()
        self._poll.register(s, select.POLLIN)
        self._head = bytearray(2)
        self._body = bytearray(255)
        self._out = bytearray(257)
        self.levels = {}  # pin -> level the emulator drives it to
        self.pins = {}  # pin -> Pin object, for IRQs
        self.i2c_answer = None
        self.wifi_up = False
        self._pumping = False

    def send(self, channel, payload):
        out = self._out
        n = len(payload)
        out[0] = channel
        out[1] = n
        out[2:2 + n] = payload
        self.s.write(memoryview(out)[:2 + n])

    def _read_exactly(self, buf, n):
        mv = memoryview(buf)
        got = 0
        while got < n:
            k = self.s.readinto(mv[got:n])
            if not k:
                print("board emulator gone")
                sys.exit(3)  # the board is the hardware: without it the device is dead
            got += k

    def drain(self):
        """Apply every packet waiting now; False when none was."""
        any_read = False
        while self._poll.poll(0):
            self._read_exactly(self._head, 2)
            channel, n = self._head[0], self._head[1]
            self._read_exactly(self._body, n)
            body = self._body
            any_read = True
            if channel == _GPIO:
                for j in range(0, n - 2, 3):
                    self._level((body[j] << 8) | body[j + 1], body[j + 2])
            elif channel == _I2C:
                self.i2c_answer = bytes(body[:n])
            elif channel == _WIFI:
                self.wifi_up = bool(body[0])
        return any_read

    def _level(self, pin, v):
        old = self.levels.get(pin, 0)
        self.levels[pin] = v
        p = self.pins.get(pin)
        if p is not None and p._handler is not None and old != v:
            if p._trigger & (Pin.IRQ_RISING if v else Pin.IRQ_FALLING):
                p._handler(p)  # soft IRQ: runs between bytecodes, as the port's does

    def pump(self):
        # Inputs and IRQs arrive while the app awaits, as they do on a chip.
        if not self._pumping:
            self._pumping = True
            asyncio.create_task(self._pump())

    async def _pump(self):
        from asyncio import core

        while True:
            yield core._io_queue.queue_read(self.s)
            self.drain()


_bus = _Bus(_wiring["bus"])


class Pin:
    IN = const(1)
    OUT = const(3)
    OPEN_DRAIN = const(7)
    PULL_UP = const(2)
    PULL_DOWN = const(1)
    IRQ_RISING = const(1)
    IRQ_FALLING = const(2)

    def __new__(cls, id, *args, **kw):
        # Pin(n) twice is one pin, as on the port
        p = _bus.pins.get(id)
        if p is None:
            _claim(id, "Pin")
            p = object.__new__(cls)
            p._id = id
            p._mode = Pin.IN
            p._out = 0
            p._pull = None
            p._handler = None
            p._trigger = 0
            _bus.pins[id] = p
        return p

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        if mode != -1:
            self._mode = mode
        if pull != -1:
            self._pull = pull
        if value is not None:
            self.value(value)
        _bus.pump()

    def value(self, v=None):
        if v is None:
            if self._mode == Pin.OUT:
                return self._out
            _bus.drain()
            level = _bus.levels.get(self._id)
            if level is None:  # nothing drives it: the pull decides
                return 1 if self._pull == Pin.PULL_UP else 0
            return level
        self._out = 1 if v else 0
        _bus.send(_GPIO, bytes((self._id >> 8, self._id & 0xFF, self._out)))
        return None

    def irq(self, handler=None, trigger=3, hard=False):
        self._handler = handler
        self._trigger = trigger


class UART(io.IOBase):
    """A UART whose far end is a module's emulator on a pseudo-terminal. Bytes
    wait in a receive buffer as in the port's driver (any(), read(), readinto()
    return at once; read() gives None when nothing came)."""

    def __init__(self, id, baudrate=115200, *, tx, rx, rxbuf=256, timeout=0, **kw):
        if not 0 <= id <= 2:
            raise ValueError("UART(%d) doesn't exist" % id)
        who = "UART%d" % id
        _claim(tx, who)
        _claim(rx, who)
        path = _wiring["uart"].get(str(id))
        if path is None:
            raise OSError(_ENODEV)  # nothing wired to it in this emulation
        self._f = open(path, "r+b")
        fd = self._f.fileno()
        termios.setraw(fd)
        a = termios.tcgetattr(fd)
        a[6][6] = 0  # VMIN 0, VTIME 0: a read returns what has come, at once
        a[6][5] = 0
        termios.tcsetattr(fd, termios.TCSANOW, a)
        self._rx = bytearray(rxbuf)
        self._n = 0

    def _fill(self):
        if self._n < len(self._rx):
            k = self._f.readinto(memoryview(self._rx)[self._n:])
            if k:
                self._n += k
        return self._n

    def any(self):
        return self._fill()

    def readinto(self, buf, nbytes=None):
        n = min(self._fill(), len(buf) if nbytes is None else nbytes)
        if not n:
            return None
        buf[:n] = memoryview(self._rx)[:n]
        self._rx[:self._n - n] = memoryview(self._rx)[n:self._n]
        self._n -= n
        return n

    def read(self, nbytes=-1):
        n = self._fill() if nbytes is None or nbytes < 0 else min(self._fill(), nbytes)
        if not n:
            return None
        out = bytearray(n)
        self.readinto(out, n)
        return bytes(out)

    def write(self, buf):
        return self._f.write(buf)

    def ioctl(self, req, arg):
        if req == _GET_FILENO:
            # poll() waits on the pty while nothing is buffered; with bytes in the
            # buffer it asks ioctl(POLL) instead, which says they are there.
            return -_EINVAL if self._fill() else self._f.fileno()
        if req == _POLL:
            return arg & select.POLLIN if self._fill() else 0
        return -_EINVAL


class I2C:
    """Transactions go to the board emulator, which models the chips on the bus."""

    def __init__(self, id, *, scl, sda, freq=400000, timeout=50000):
        if not 0 <= id <= 1:
            raise ValueError("I2C(%d) doesn't exist" % id)
        who = "I2C%d" % id
        _claim(scl, who)
        _claim(sda, who)

    def _transfer(self, addr, data, nread):
        _bus.i2c_answer = None
        _bus.send(_I2C, bytes((addr, len(data))) + data + bytes((nread,)))
        while _bus.i2c_answer is None:
            _bus._poll.poll(-1)
            _bus.drain()
        a = _bus.i2c_answer
        if a[0]:
            raise OSError(a[0])  # ENODEV: no chip answered at addr
        return a[1:]

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._transfer(addr, bytes((memaddr,)) + bytes(buf), 0)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        buf[:] = self._transfer(addr, bytes((memaddr,)), len(buf))



class WDT:
    """The watchdog is outside the CPU: the board emulator keeps its timer, so a
    hung interpreter is reset as a hung chip is."""

    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError("WDT(%d) doesn't exist" % id)
        _bus.send(_WDT, bytes((0, timeout >> 24, (timeout >> 16) & 255, (timeout >> 8) & 255,
                               timeout & 255)))

    def feed(self):
        _bus.send(_WDT, b"\x01")


def reset():
    sys.exit(1)  # the emulator's supervisor powers the device up again


def reset_cause():
    return _wiring.get("reset_cause", PWRON_RESET)


def unique_id():
    return bytes(_wiring.get("mac", b"\x00" * 6))
