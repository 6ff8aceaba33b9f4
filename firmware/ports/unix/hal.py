# Hardware layer, unix port (simulator and tests). Serial lines are paths (a
# pseudo-terminal each, uart.py); a dock's locks, sensors and tag readers are
# reached through the emulator's bus (bus.py). Each is loaded only by devices
# that have one (a kiosk has no bus, a dock on MQTT no serial line): every
# module loaded costs heap.
import sys
import time

ticks_ms = time.ticks_ms
ticks_diff = time.ticks_diff


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
    if cfg.get("uart"):
        import uart  # noqa: F401  (serial lines: loaded now, before the app's buffers)

    # The emulated hardware's address: in config.json (the simulator's devices), or
    # the board's own wiring (a board on the bench, hardware/sim/bench.py, which
    # `huimin provision` leaves alone as it leaves an ESP32's board file).
    addr = cfg.get("bus")
    if not addr:
        import os

        addr = os.getenv("HUIMIN_BOARD_BUS")
    if addr:
        import bus

        await bus.connect(addr, board["slots"])
        SlotIO = bus.SlotIO
        tag_port = bus.tag_port


def uart(name, cfg):
    """A serial line from the config: "edge" is cfg["uart"], others cfg[name + "_uart"]."""
    from uart import PtyUart

    return PtyUart(cfg["uart"] if name == "edge" else cfg[name + "_uart"])


def reset():
    # A soft reset on the unix port is a process exit; the supervisor restarts us.
    sys.exit(1)


def lookup_token(n):
    """The kiosk's lookup token for ID number n, from the board's key store
    ("region_key": "efuse" in config.json): the app never holds the key. On the
    ESP32-S3 this is the HMAC peripheral with the key in an eFuse block; here
    the block is emulated by a file beside config.json ("efuse_key", hex),
    read for each token and not kept."""
    import binascii

    from wire import idcard

    with open("efuse_key") as f:
        return idcard.token(binascii.unhexlify(f.read().strip()), n)
