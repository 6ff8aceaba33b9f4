"""Emulated dock hardware: per slot a solenoid lock (output), a bolt sensor
("latched") and a bike-present switch (inputs), and a 125 kHz tag reader that
sends real RDM6300 frames. The firmware reaches it over hardware/sim_bus.py;
tests and the simulator drive it (insert bike X into slot 3, jam the lock of
slot 5, ...)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wire import rdm6300_module

from hardware.sim_bus import GPIO, gpio_packet, uart_packet

log = logging.getLogger("hardware.dock")

BOARD = Path(__file__).parent / "boards" / "unix_dock.json"
LATCH_DELAY = 0.05  # s for a bolt to move
TAG_DELAY = 0.03  # s from push-in to the reader's first frame
TAG_REPEAT = 1.0  # s between frames while a tag stays in the field (real readers repeat)


class EmulatorError(RuntimeError):
    """A physically impossible request (take a locked bike, insert into a full slot)."""


@dataclass
class SlotHw:
    present: bool = False
    latched: bool = False
    lock_cmd: int = 0
    bike: str | None = None
    jammed: bool = False
    tag_fault: str | None = None  # None, "silent" (no frame) or "corrupt" (bad checksum)


class DockEmulator:
    def __init__(self, name: str, slots: int, bikes: dict[int, str] | None = None,
                 pins: dict[str, list[int]] | None = None) -> None:
        # pins: the board file's slot pins (the unix bus's by default; a board
        # emulator passes its own: hardware/esp32s3_dock.py)
        board = pins or json.loads(BOARD.read_text())["slots"]
        self.name = name
        self.slots = [SlotHw() for _ in range(slots)]
        self.pin_lock = board["lock"][:slots]
        self.pin_latched = board["latched"][:slots]
        self.pin_present = board["present"][:slots]
        self._lock_index = {p: i for i, p in enumerate(self.pin_lock)}
        for i, bike in (bikes or {}).items():
            s = self.slots[i]
            s.present, s.latched, s.bike = True, True, bike
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self.connected = asyncio.Event()
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._repeater: asyncio.Task[None] | None = None

    # -- server -------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1") -> str:
        self._server = await asyncio.start_server(self._serve, host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"{host}:{self.port}"

    async def close(self) -> None:
        if self._server:
            self._server.close()
        if self._writer:
            self._writer.close()
        for t in [*self._tasks, self._repeater]:
            if t is not None:
                t.cancel()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if self._writer is not None:
            self._writer.close()  # a rebooted firmware replaces the old link
        self._writer = w
        levels: list[tuple[int, int | bool]] = []
        for i, s in enumerate(self.slots):
            levels += [(self.pin_present[i], s.present), (self.pin_latched[i], s.latched)]
        w.write(gpio_packet(levels))
        self.connected.set()
        if self._repeater is None:
            self._repeater = asyncio.get_running_loop().create_task(self._repeat_tags())
        try:
            while True:
                hdr = await r.readexactly(2)
                payload = await r.readexactly(hdr[1])
                if hdr[0] == GPIO:
                    for j in range(0, len(payload) - 2, 3):
                        pin = (payload[j] << 8) | payload[j + 1]
                        self._on_output(pin, payload[j + 2])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self._writer is w:
                self._writer = None
                self.connected.clear()

    def _send(self, data: bytes) -> None:
        if self._writer is not None:
            self._writer.write(data)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def _set_inputs(self, i: int) -> None:
        s = self.slots[i]
        levels = [(self.pin_present[i], s.present), (self.pin_latched[i], s.latched)]
        self._send(gpio_packet(levels))

    def _on_output(self, pin: int, v: int) -> None:
        i = self._lock_index.get(pin)
        if i is None:
            return
        s = self.slots[i]
        s.lock_cmd = v
        if not s.jammed:
            self._spawn(self._move_bolt(i, bool(v)))

    async def _move_bolt(self, i: int, closed: bool) -> None:
        await asyncio.sleep(LATCH_DELAY)
        s = self.slots[i]
        if s.jammed or bool(s.lock_cmd) != closed:
            return
        s.latched = closed
        self._set_inputs(i)

    async def _read_tag(self, i: int) -> None:
        await asyncio.sleep(TAG_DELAY)
        s = self.slots[i]
        if not s.present or s.bike is None or s.tag_fault == "silent":
            return
        frame = rdm6300_module.encode(s.bike, corrupt=s.tag_fault == "corrupt")
        self._send(uart_packet(i + 1, frame))

    async def _repeat_tags(self) -> None:
        while True:
            for i, s in enumerate(self.slots):
                if s.present and s.bike is not None and s.tag_fault is None:
                    self._send(uart_packet(i + 1, rdm6300_module.encode(s.bike)))
            await asyncio.sleep(TAG_REPEAT)

    # -- what tests and riders do ---------------------------------------------
    def insert_bike(self, slot: int, bike: str) -> None:
        s = self.slots[slot]
        if s.present:
            raise EmulatorError(f"{self.name} slot {slot} already holds a bike")
        if s.latched:
            raise EmulatorError(f"{self.name} slot {slot} bolt is closed")
        s.present, s.bike = True, bike
        self._set_inputs(slot)
        self._spawn(self._read_tag(slot))

    def take_bike(self, slot: int) -> str:
        s = self.slots[slot]
        if not s.present or s.bike is None:
            raise EmulatorError(f"{self.name} slot {slot} is empty")
        if s.latched:
            raise EmulatorError(f"{self.name} slot {slot} is locked")
        bike = s.bike
        s.present, s.bike = False, None
        self._set_inputs(slot)
        return bike

    def jam(self, slot: int, jammed: bool = True) -> None:
        self.slots[slot].jammed = jammed
        if not jammed:
            self._spawn(self._move_bolt(slot, bool(self.slots[slot].lock_cmd)))

    def set_tag_fault(self, slot: int, fault: str | None) -> None:
        self.slots[slot].tag_fault = fault

    def locked_bikes(self) -> int:
        return sum(1 for s in self.slots if s.present and s.latched)

    def free_slots(self) -> int:
        return sum(1 for s in self.slots if not s.present)

    def takeable(self) -> list[int]:
        return [i for i, s in enumerate(self.slots) if s.present and not s.latched]
