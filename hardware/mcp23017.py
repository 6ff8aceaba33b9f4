"""An emulated MCP23017 16-bit I/O expander, register for register (datasheet
DS20001952, IOCON.BANK = 0): what the dock firmware's driver
(firmware/drivers/mcp23017.py) talks to over the emulated board's I2C. Inputs
are driven by the outside world (a slot's switches); outputs latch in OLAT and
show on the pins the chip's direction register makes outputs; interrupt-on-
change captures the port in INTCAP and asserts INT until GPIO or INTCAP is read."""

from __future__ import annotations

from collections.abc import Callable

IODIRA, IPOLA, GPINTENA, DEFVALA, INTCONA, IOCON = 0x00, 0x02, 0x04, 0x06, 0x08, 0x0A
GPPUA, INTFA, INTCAPA, GPIOA, OLATA = 0x0C, 0x0E, 0x10, 0x12, 0x14
REGISTERS = 0x16
MIRROR, ODR, INTPOL = 0x40, 0x04, 0x02


class Mcp23017:
    def __init__(self, on_output: Callable[[int, int], None] | None = None) -> None:
        self.reg = bytearray(REGISTERS)
        self.reg[IODIRA] = self.reg[IODIRA + 1] = 0xFF  # every pin an input at power-on
        self.pins = 0  # what the outside world drives the input pins to (bit n = GPA n / GPB n-8)
        self.pointer = 0
        self.int_active = False
        self.on_output = on_output or (lambda bit, level: None)
        self.on_int: Callable[[], None] = lambda: None  # INT changed: the board re-reads its line

    def _word(self, a: int) -> int:
        return self.reg[a] | (self.reg[a + 1] << 8)

    def _set_word(self, a: int, v: int) -> None:
        self.reg[a], self.reg[a + 1] = v & 0xFF, (v >> 8) & 0xFF

    def port(self) -> int:
        """GPIO as read: inputs from the pins (through IPOL), outputs from OLAT."""
        inputs = self._word(IODIRA)
        return ((self.pins ^ self._word(IPOLA)) & inputs) | (self._word(OLATA) & ~inputs & 0xFFFF)

    def int_level(self) -> int | None:
        """INTA, the pin the board wires: None while released (open drain), else
        the level it drives. Port B's changes reach INTA only with IOCON.MIRROR."""
        polarity = 1 if self.reg[IOCON] & INTPOL else 0
        if self.int_active and (self.reg[IOCON] & MIRROR or self.reg[INTFA]):
            return polarity
        return None if self.reg[IOCON] & ODR else 1 - polarity

    # -- the I2C side ----------------------------------------------------------------
    def transfer(self, write: bytes, nread: int) -> bytes:
        """One I2C transaction: the first byte written sets the register pointer,
        the rest are written from there on; then nread bytes are read on from the
        pointer (sequential mode: the pointer steps after each byte)."""
        if write:
            self.pointer = write[0] % REGISTERS
            for b in write[1:]:
                self._write(self.pointer, b)
                self.pointer = (self.pointer + 1) % REGISTERS
        out = bytearray()
        for _ in range(nread):
            out.append(self._read(self.pointer))
            self.pointer = (self.pointer + 1) % REGISTERS
        return bytes(out)

    def _read(self, a: int) -> int:
        if a in (GPIOA, GPIOA + 1, INTCAPA, INTCAPA + 1):
            self._clear_int()
        if a in (GPIOA, GPIOA + 1):
            return (self.port() >> (8 * (a - GPIOA))) & 0xFF
        return self.reg[a]

    def _write(self, a: int, v: int) -> None:
        if a in (INTFA, INTFA + 1, INTCAPA, INTCAPA + 1):
            return  # read-only
        if a in (IOCON, IOCON + 1):
            self.reg[IOCON] = self.reg[IOCON + 1] = v & 0xFE  # one register at two addresses
            self.on_int()
            return
        if a in (GPIOA, GPIOA + 1):
            a += OLATA - GPIOA  # a write to GPIO writes the output latch
        before = self._word(OLATA) & ~self._word(IODIRA) & 0xFFFF
        self.reg[a] = v
        after = self._word(OLATA) & ~self._word(IODIRA) & 0xFFFF
        for bit in range(16):
            if (before ^ after) >> bit & 1:
                self.on_output(bit, after >> bit & 1)

    # -- the pins' side ----------------------------------------------------------------
    def drive(self, bit: int, level: int) -> None:
        """The outside world sets input pin `bit` (0-7 GPA, 8-15 GPB)."""
        before = self.port()
        self.pins = (self.pins & ~(1 << bit)) | ((1 if level else 0) << bit)
        changed = (before ^ self.port()) & self._word(GPINTENA) & self._word(IODIRA)
        compare = self._word(INTCONA)
        # INTCON bit set: compare with DEFVAL, else interrupt on any change
        against_default = (self.port() ^ self._word(DEFVALA)) & compare & self._word(GPINTENA)
        fired = (changed & ~compare) | against_default
        if fired and not self.int_active:
            self._set_word(INTFA, fired)
            self._set_word(INTCAPA, self.port())
            self.int_active = True
            self.on_int()

    def _clear_int(self) -> None:
        if self.int_active:
            self.int_active = False
            self._set_word(INTFA, 0)
            self.on_int()
