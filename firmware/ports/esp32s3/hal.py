# Hardware layer, ESP32-S3 boards (pins from hardware/boards/esp32s3_dock.json and
# esp32s3_kiosk.json, whichever the image was built for; Wi-Fi when the config has it).
# Same interface as ports/unix/hal.py. Type-checked against the ESP32-S3 port's stubs
# (tests/firmware/test_board_modules.py), and run unchanged in the simulator and the
# tests (`huimin sim --board esp32s3`) on the port's modules as hardware/esp32s3_rom/
# emulates them.
import asyncio
import time

import machine

ticks_ms = time.ticks_ms
ticks_diff = time.ticks_diff
_board = {}  # type: dict


def WDT(timeout_ms):
    # The port's constructor is WDT(id=0, timeout=5000): a bare number would be the id,
    # and WDT(8000) raises "WDT(8000) doesn't exist" (found by the stubs' type check).
    return machine.WDT(timeout=timeout_ms)


class _Uart:
    def __init__(self, u):
        self._u = u
        self._sr = asyncio.StreamReader(u)

    async def readinto(self, buf):
        first = await self._sr.read(1)
        buf[0] = first[0]
        n = 1
        k = min(self._u.any(), len(buf) - 1)
        if k:
            n += self._u.readinto(memoryview(buf)[1:1 + k])
        return n

    async def write(self, data):
        self._u.write(data)


class _ChipSlots:
    """Slots on the chip's own GPIO (up to 4 on a DevKitC)."""

    def __init__(self, pins, n):
        self.lock = [machine.Pin(p, machine.Pin.OUT, value=0) for p in pins["lock"][:n]]
        self.latched = [machine.Pin(p, machine.Pin.IN) for p in pins["latched"][:n]]
        self.present = [machine.Pin(p, machine.Pin.IN) for p in pins["present"][:n]]

    def read(self, i):
        return self.present[i].value(), self.latched[i].value()

    def set_lock(self, i, v):
        self.lock[i].value(v)


class _ExpanderSlots:
    """Slots on MCP23017 expanders: board pin 256 * (k + 1) + bit is bit `bit`
    of expander k (board file "i2c": "expanders"). The inputs are read over
    I2C only when an expander's INT line says one changed (and once a second,
    should an edge be missed); between, read() answers from the last levels."""

    def __init__(self, pins, n):
        from drivers.mcp23017 import Mcp23017  # loaded by init(), before the app's buffers

        spec = _board["i2c"]
        i2c = machine.I2C(spec["id"], scl=spec["scl"], sda=spec["sda"],
                          freq=spec.get("freq", 400000))
        self.lock = pins["lock"][:n]
        self.latched = pins["latched"][:n]
        self.present = pins["present"][:n]
        outputs = [0] * len(spec["expanders"])
        for p in self.lock:
            outputs[(p >> 8) - 1] |= 1 << (p & 15)
        self.chips = [Mcp23017(i2c, a, outputs[k]) for k, a in enumerate(spec["expanders"])]
        self.levels = [c.read() for c in self.chips]
        self._changed = False
        self._read_at = ticks_ms()
        self._int = machine.Pin(spec["int"], machine.Pin.IN, machine.Pin.PULL_UP)
        self._int.irq(self._on_int, machine.Pin.IRQ_FALLING)

    def _on_int(self, pin):
        self._changed = True  # soft IRQ: only a flag; the scan reads the chips

    def _level(self, p):
        return (self.levels[(p >> 8) - 1] >> (p & 15)) & 1

    def read(self, i):
        if i == 0:  # once per scan of the slots
            now = ticks_ms()
            if self._changed or not self._int.value() or ticks_diff(now, self._read_at) >= 1000:
                self._changed = False
                self._read_at = now
                for k in range(len(self.chips)):
                    self.levels[k] = self.chips[k].read()
        return self._level(self.present[i]), self._level(self.latched[i])

    def set_lock(self, i, v):
        p = self.lock[i]
        self.chips[(p >> 8) - 1].set(p & 15, v)


def SlotIO(pins, n):
    """Lock outputs and bolt/bike sensors of a dock's n slots, wherever the
    board file puts them."""
    if max(pins["lock"][:n]) >= 256:
        return _ExpanderSlots(pins, n)
    return _ChipSlots(pins, n)


class MuxTags:
    """RDM6300 readers behind a 74HC4052: select a slot, listen, move on."""

    def __init__(self, n):
        spec = _board["uarts"]["tag"]
        self._u = machine.UART(spec["id"], baudrate=spec.get("baud", 9600), tx=spec["tx"],
                               rx=spec["rx"])
        # 74HC4052 (2 selects, 4 readers) or 74HC4067 (4 selects, 16 readers)
        self._sel = [machine.Pin(p, machine.Pin.OUT) for p in spec.get("select", (38, 39))]
        self._n = n
        self._slot = 0
        self._buf = bytearray(16)

    async def read(self):
        while True:
            for b in range(len(self._sel)):
                self._sel[b].value((self._slot >> b) & 1)
            await asyncio.sleep_ms(60)  # a reader repeats its frame every ~50 ms
            k = self._u.any()
            slot = self._slot
            self._slot = (self._slot + 1) % self._n
            if k:
                # None when the bytes went before the read (a timeout): nothing, not the
                # whole buffer's stale bytes (found by the stubs' type check).
                k = self._u.readinto(self._buf, min(k, 16)) or 0
                if k:
                    return slot, bytes(self._buf[:k])


async def init(board, cfg):
    # Only what the drivers read later: the board file's notes would take heap.
    _board["uarts"] = board["uarts"]
    _board["i2c"] = board.get("i2c")
    if _board["i2c"]:
        import drivers.mcp23017  # noqa: F401  (code first, while the heap has room)
    wifi = cfg.get("wifi")
    if wifi:
        await _wifi(wifi)


async def _wifi(w):
    """Station mode; the MQTT uplink's reconnect loop covers a slow access point,
    so boot waits at most 15 s. The ESP32 port rejoins by itself after a drop."""
    import network

    import log

    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(w["ssid"], w.get("password", ""))
    t0 = time.ticks_ms()
    while not wlan.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 15000:
        await asyncio.sleep_ms(200)
    if wlan.isconnected():
        log.get("hal").info("wifi %s: %s", w["ssid"], wlan.ifconfig()[0])
    else:
        log.get("hal").warning("wifi %s: not joined yet (status %r)", w["ssid"], wlan.status())


def uart(name, cfg):
    spec = _board["uarts"][name]
    u = machine.UART(spec["id"], baudrate=spec.get("baud", 115200), tx=spec["tx"], rx=spec["rx"])
    return _Uart(u)


def tag_port(n):
    return MuxTags(n)


def reset():
    machine.reset()


def lookup_token(n):
    """The lookup token from the HMAC peripheral, the region key in an eFuse
    block that software cannot read ("region_key": "efuse"). Stock MicroPython
    has no binding to the peripheral (a C module in a custom build would be):
    until then a kiosk on this board keeps its key in config.json."""
    raise OSError("no HMAC peripheral binding in this MicroPython build")
