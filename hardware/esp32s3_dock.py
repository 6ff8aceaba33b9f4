"""A dock's slots (hardware/dock_emulator.py's physics) wired as the ESP32-S3
board file wires them: locks and switches on MCP23017 expanders behind the
board's I2C (or on the chip's own GPIO, for a 4-slot board), each slot's RDM6300
reader behind the tag multiplexer on one UART, and the edge's RS-485 line on
another. The firmware runs the board's own hal on hardware/esp32s3_board.py."""

from __future__ import annotations

import asyncio
import json
import os
import tty
from collections.abc import Callable
from pathlib import Path

from wire import rdm6300_module

from hardware.dock_emulator import DockEmulator
from hardware.esp32s3_board import Esp32s3Board
from hardware.mcp23017 import Mcp23017

BOARD = Path(__file__).parent / "boards" / "esp32s3_dock.json"
SELECT_SETTLE = 0.02  # s from the last select change to the chosen reader's next frame


class Esp32s3Dock(DockEmulator):
    def __init__(self, name: str, slots: int, bikes: dict[int, str] | None = None,
                 edge_uart: str = "", wifi: dict[str, str] | None = None) -> None:
        spec = json.loads(BOARD.read_text())
        super().__init__(name, slots, bikes, pins=spec["slots"])
        # The tag UART: a pseudo-terminal whose far end is the multiplexer's output.
        self._tag_master, self._tag_slave = os.openpty()
        tty.setraw(self._tag_master)
        uarts = {spec["uarts"]["tag"]["id"]: os.ttyname(self._tag_slave)}
        if edge_uart:
            uarts[spec["uarts"]["edge"]["id"]] = edge_uart
        self.board = Esp32s3Board(name, spec, uarts, wifi)
        self.board.on_output = self._on_pin
        self._select = spec["uarts"]["tag"]["select"]
        self._selected_at: asyncio.TimerHandle | None = None
        self.chips: dict[int, Mcp23017] = {}
        bus = spec.get("i2c")
        if bus:
            self._int_pin = bus["int"]
            for k, addr in enumerate(bus["expanders"]):
                chip = Mcp23017(on_output=self._expander_output(k))
                chip.on_int = self._int_changed
                self.chips[k] = chip
                self.board.i2c[addr] = chip
        for i in range(slots):
            self._set_inputs(i)

    async def start(self, host: str = "127.0.0.1") -> str:
        address = await self.board.start(host)
        self.port = int(address.rsplit(":", 1)[1])
        return address

    async def close(self) -> None:
        await self.board.close()
        for fd in (self._tag_master, self._tag_slave):
            os.close(fd)
        await super().close()

    # -- pins: the physics' inputs and outputs, on the chip or an expander ---------------
    def _drive(self, pin: int, level: bool) -> None:
        if pin >= 256:
            self.chips[(pin >> 8) - 1].drive(pin & 15, int(level))
        else:
            self.board.drive(pin, int(level))

    def _set_inputs(self, i: int) -> None:
        s = self.slots[i]
        self._drive(self.pin_present[i], s.present)
        self._drive(self.pin_latched[i], s.latched)

    def _expander_output(self, k: int) -> Callable[[int, int], None]:
        def output(bit: int, level: int) -> None:
            self._on_pin(256 * (k + 1) + bit, level)
        return output

    def _int_changed(self) -> None:
        # Open-drain INT lines wired together, pulled up: low while any chip pulls.
        low = any(c.int_level() == 0 for c in self.chips.values())
        self.board.drive(self._int_pin, 0 if low else 1)

    def _on_pin(self, pin: int, level: int) -> None:
        if pin in self._select:
            self._reselect()
        else:
            self._on_output(pin, level)

    # -- the tag multiplexer ---------------------------------------------------------------
    def _reselect(self) -> None:
        # The selects change one at a time: the reader chosen is the one
        # selected once they have settled.
        if self._selected_at is not None:
            self._selected_at.cancel()
        self._selected_at = asyncio.get_running_loop().call_later(SELECT_SETTLE, self._selected)

    def _selected(self) -> None:
        channel = sum(self.board.outputs.get(p, 0) << b for b, p in enumerate(self._select))
        if channel >= len(self.slots):
            return
        s = self.slots[channel]
        if s.present and s.bike is not None and s.tag_fault != "silent":
            # A reader sends its tag's frame over and over while the tag is in
            # its field: the UART hears the one the multiplexer selects.
            frame = rdm6300_module.encode(s.bike, corrupt=s.tag_fault == "corrupt")
            os.write(self._tag_master, frame)

    async def _read_tag(self, i: int) -> None:
        return None  # the reader's frames reach the UART through the multiplexer

    async def _repeat_tags(self) -> None:
        return None
