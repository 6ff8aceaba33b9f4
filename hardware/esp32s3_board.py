"""The host half of an emulated ESP32-S3 board. The firmware runs the board's
own hal (firmware/ports/esp32s3/hal.py) under the MicroPython unix port, with
the port's `machine` and `network` modules emulated in hardware/esp32s3_rom/;
those talk to this over one loopback connection:

    [channel:1][length:1][payload]
    0x00 GPIO  [pin_hi pin_lo level]...   both ways: outputs from the chip,
                                          levels the outside world drives
    0xF0 I2C   to the board: [addr n_write bytes... n_read];
               back: [errno, bytes read...] (errno 19: no chip at addr)
    0xF1 WDT   [0 timeout_ms:4] start, [1] feed
    0xF2 WIFI  [1] the access point is in reach, [0] it is not

UARTs are pseudo-terminals, one per UART id, whose far ends the modules'
emulators hold. The watchdog's timer runs here, outside the emulated CPU:
an interpreter that stops feeding it (hung, or stopped by a fault) is reset
as a chip is, through `on_watchdog`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("hardware.esp32s3")

ROM = Path(__file__).parent / "esp32s3_rom"  # the emulated built-in modules (MicroPython)
GPIO, I2C, WDT, WIFI = 0x00, 0xF0, 0xF1, 0xF2
ENODEV = 19
WDT_RESET, PWRON_RESET = 3, 1


class I2cChip(Protocol):
    def transfer(self, write: bytes, nread: int) -> bytes: ...


def packet(channel: int, payload: bytes) -> bytes:
    return bytes((channel, len(payload))) + payload


def board_pins(board: dict[str, Any]) -> list[int]:
    """Every GPIO a board file owns: slot pins on the chip itself, UART pins,
    the multiplexer's selects, the I2C bus and the expanders' interrupt line."""
    pins: set[int] = set()
    for v in board.get("slots", {}).values():
        pins |= {p for p in v if p < 49}
    for u in board.get("uarts", {}).values():
        pins |= {u["tx"], u["rx"], *u.get("select", ())}
        if "de" in u:
            pins.add(u["de"])
    bus = board.get("i2c")
    if bus:
        pins |= {bus["scl"], bus["sda"], bus["int"]}
    return sorted(pins)


class Esp32s3Board:
    def __init__(self, name: str, board: dict[str, Any], uarts: dict[int, str],
                 wifi: dict[str, str] | None = None) -> None:
        self.name = name
        self.board = board
        self.uarts = uarts  # UART id -> the pty path the firmware opens
        self.wifi = wifi or {}
        self.wifi_up = True
        self.inputs: dict[int, int] = {}  # pin -> level the outside world drives
        self.outputs: dict[int, int] = {}  # pin -> level the firmware drives
        self.on_output: Callable[[int, int], None] = lambda pin, level: None
        self.on_watchdog: Callable[[], None] = lambda: None  # reset the device (kill it)
        self.i2c: dict[int, I2cChip] = {}
        self.watchdog_resets = 0
        self.reset_cause = PWRON_RESET
        self._wdt_timeout = 0.0
        self._wdt_fed = 0.0
        self._wdt_task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self._mac = bytes((0x24, 0x0A, 0xC4, 0, sum(name.encode()) & 0xFF, len(name)))
        self.connected = asyncio.Event()

    # -- the bus ------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1") -> str:
        self._server = await asyncio.start_server(self._serve, host, 0)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"{host}:{port}"
        return self.address

    def write_wiring(self, flash: Path) -> None:
        """board_wiring.json in the device's folder: what hardware/esp32s3_rom reads."""
        wiring = {"bus": self.address, "uart": {str(k): v for k, v in self.uarts.items()},
                  "pins": board_pins(self.board), "wifi": self.wifi, "mac": list(self._mac),
                  "reset_cause": self.reset_cause}
        (flash / "board_wiring.json").write_text(json.dumps(wiring))

    async def close(self) -> None:
        if self._wdt_task is not None:
            self._wdt_task.cancel()
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if self._writer is not None:
            self._writer.close()  # a rebooted chip replaces the old link
        self._writer = w
        self._wdt_timeout = 0.0  # the watchdog is off until the new boot starts it
        self.outputs.clear()
        levels = bytearray()
        for pin, level in self.inputs.items():
            levels += bytes((pin >> 8, pin & 0xFF, level))
        for i in range(0, len(levels), 255 // 3 * 3):
            w.write(packet(GPIO, bytes(levels[i:i + 255 // 3 * 3])))
        w.write(packet(WIFI, bytes((self.wifi_up,))))
        self.connected.set()
        try:
            while True:
                head = await r.readexactly(2)
                body = await r.readexactly(head[1])
                self._packet(head[0], body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("%s: the board emulator failed", self.name)
            raise
        finally:
            if self._writer is w:
                self._writer = None
                self._wdt_timeout = 0.0
                self.connected.clear()

    def _send(self, data: bytes) -> None:
        if self._writer is not None:
            self._writer.write(data)

    def _packet(self, channel: int, body: bytes) -> None:
        if channel == GPIO:
            for j in range(0, len(body) - 2, 3):
                pin, level = (body[j] << 8) | body[j + 1], body[j + 2]
                if self.outputs.get(pin) != level:
                    self.outputs[pin] = level
                    self.on_output(pin, level)
        elif channel == I2C:
            addr, n = body[0], body[1]
            chip = self.i2c.get(addr)
            if chip is None:
                self._send(packet(I2C, bytes((ENODEV,))))
            else:
                self._send(packet(I2C, b"\x00" + chip.transfer(body[2:2 + n], body[2 + n])))
        elif channel == WDT:
            self._watchdog(body)

    def drive(self, pin: int, level: int) -> None:
        """The outside world sets an input pin."""
        level = 1 if level else 0
        if self.inputs.get(pin) != level:
            self.inputs[pin] = level
            self._send(packet(GPIO, bytes((pin >> 8, pin & 0xFF, level))))

    # -- the watchdog ---------------------------------------------------------------------
    def _watchdog(self, body: bytes) -> None:
        if body[0] == 0:
            self._wdt_timeout = int.from_bytes(body[1:5], "big") / 1000
            log.info("%s: watchdog started, %.1f s", self.name, self._wdt_timeout)
            if self._wdt_task is None:
                self._wdt_task = asyncio.get_running_loop().create_task(
                    self._watch(), name=f"wdt:{self.name}")
        self._wdt_fed = time.monotonic()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            if self._wdt_timeout and time.monotonic() - self._wdt_fed > self._wdt_timeout:
                log.warning("%s: watchdog not fed for %.1f s: reset", self.name,
                            self._wdt_timeout)
                self._wdt_timeout = 0.0
                self.watchdog_resets += 1
                self.reset_cause = WDT_RESET
                with contextlib.suppress(Exception):
                    self.on_watchdog()

    def powered_up(self, flash: Path) -> None:
        """Before each boot: the wiring with the last reset's cause, which the
        next boot reads (machine.reset_cause()); a later reset is a power-on
        unless the watchdog says otherwise."""
        self.write_wiring(flash)
        self.reset_cause = PWRON_RESET

    # -- the radio ----------------------------------------------------------------------
    def set_wifi(self, up: bool) -> None:
        self.wifi_up = up
        self._send(packet(WIFI, bytes((up,))))
