"""The emulated MCP23017 behaves as the datasheet says, register by register, so
the dock's driver is tested against the chip and not against itself."""

from __future__ import annotations

from hardware.mcp23017 import (
    DEFVALA,
    GPINTENA,
    GPIOA,
    INTCAPA,
    INTCONA,
    INTFA,
    IOCON,
    IODIRA,
    MIRROR,
    ODR,
    OLATA,
    Mcp23017,
)


def chip() -> tuple[Mcp23017, list[tuple[int, int]]]:
    outputs: list[tuple[int, int]] = []
    c = Mcp23017(on_output=lambda bit, level: outputs.append((bit, level)))
    return c, outputs


def test_power_on_every_pin_an_input_and_sequential_access_steps_through_registers() -> None:
    c, _ = chip()
    assert c.transfer(bytes((IODIRA,)), 2) == b"\xff\xff"
    c.drive(3, 1)
    c.drive(12, 1)
    assert c.transfer(bytes((GPIOA,)), 2) == bytes((0x08, 0x10))


def test_outputs_latch_and_show_on_the_pins_only_once_they_are_outputs() -> None:
    c, outputs = chip()
    c.transfer(bytes((OLATA, 0x05, 0x00)), 0)
    assert outputs == []  # still inputs: nothing is driven
    c.transfer(bytes((IODIRA, 0xF0, 0xFF)), 0)  # GPA0-3 outputs
    assert outputs == [(0, 1), (2, 1)]
    c.transfer(bytes((GPIOA, 0x04)), 0)  # a write to GPIO writes the latch
    assert outputs[2:] == [(0, 0)]
    assert c.transfer(bytes((OLATA,)), 1) == b"\x04"
    assert c.transfer(bytes((GPIOA,)), 1) == b"\x04"


def test_a_change_interrupts_captures_the_port_and_reading_gpio_releases_int() -> None:
    c, _ = chip()
    ints: list[int | None] = []
    c.on_int = lambda: ints.append(c.int_level())
    c.transfer(bytes((IOCON, MIRROR | ODR)), 0)
    assert c.int_level() is None  # open drain, released
    c.transfer(bytes((GPINTENA, 0x00, 0xFF)), 0)  # port B interrupts on change
    c.drive(1, 1)  # port A: no interrupt enabled
    assert not c.int_active
    c.drive(9, 1)
    assert c.int_active and c.int_level() == 0
    assert c.transfer(bytes((INTFA,)), 2) == b"\x00\x02"
    c.drive(10, 1)  # a second change while INT is held: the capture stays the first
    assert c.transfer(bytes((INTCAPA,)), 2) == b"\x02\x02"  # reading INTCAP releases INT
    assert not c.int_active and c.int_level() is None
    c.drive(10, 0)
    assert c.int_active
    assert c.transfer(bytes((GPIOA + 1,)), 1) == b"\x02"
    assert not c.int_active
    assert ints == [None, 0, None, 0, None]


def test_without_mirror_port_b_does_not_reach_inta() -> None:
    c, _ = chip()
    c.transfer(bytes((IOCON, ODR)), 0)
    c.transfer(bytes((GPINTENA, 0x00, 0x01)), 0)
    c.drive(8, 1)
    assert c.int_active and c.int_level() is None  # INTB would go low; INTA stays released


def test_compare_with_defval_interrupts_while_the_pin_differs() -> None:
    c, _ = chip()
    c.transfer(bytes((IOCON, MIRROR)), 0)
    c.transfer(bytes((GPINTENA, 0x01, 0x00)), 0)
    c.transfer(bytes((DEFVALA, 0x00)), 0)
    c.transfer(bytes((INTCONA, 0x01)), 0)
    c.drive(1, 1)  # a pin whose interrupt is not enabled
    assert not c.int_active
    c.drive(0, 1)
    assert c.int_active
    assert c.transfer(bytes((INTFA,)), 1) == b"\x01"


class _I2C:
    """machine.I2C's memory calls onto the emulated chip (one chip, one address)."""

    def __init__(self, c: Mcp23017) -> None:
        self.c = c

    def writeto_mem(self, addr: int, reg: int, data: bytes) -> None:
        self.c.transfer(bytes((reg, *data)), 0)

    def readfrom_mem_into(self, addr: int, reg: int, buf: bytearray) -> None:
        buf[:] = self.c.transfer(bytes((reg,)), len(buf))


def test_the_docks_driver_keeps_the_locks_through_an_esp32_reset() -> None:
    """The ESP32 alone resets (its watchdog) while the expander keeps its power:
    the driver starting again must not let go of a closed bolt. It wrote the
    latch 0 at start, so every docked bike's bolt opened for a moment and the
    dock reported its latch lost (seen in the loop-stall fault, under load)."""
    import sys

    from tests.conftest import ROOT
    for p in (ROOT / "firmware", ROOT / "firmware" / "cpython"):
        sys.path.insert(0, str(p))
    try:
        from drivers.mcp23017 import Mcp23017 as Driver
    finally:
        del sys.path[:2]
    c, outputs = chip()
    locks = 0b0000_0000_0011_1111  # six lock outputs on port A
    first = Driver(_I2C(c), 0x20, locks)  # power-on: every pin an input, latch 0
    assert outputs == [] and first.latch == 0
    for bit in (0, 1, 4):
        first.set(bit, 1)  # three bikes locked
    assert outputs == [(0, 1), (1, 1), (4, 1)]
    again = Driver(_I2C(c), 0x20, locks)  # the ESP32 reset; the chip did not
    assert outputs == [(0, 1), (1, 1), (4, 1)], "a bolt let go at the reset"
    assert again.latch == 0b10011
    again.set(1, 0)
    assert outputs[-1] == (1, 0) and again.latch == 0b10001
