# MCP23017 16-bit I/O expander on I2C (a 12-slot dock has three: board file
# "i2c"). Bit n of a port word is GPA n (n < 8) or GPB n-8. Pins are inputs
# unless in `outputs`; every input interrupts on change, INTA and INTB are
# mirrored and open-drain, so the chips' INT lines share one pulled-up GPIO.
from micropython import const

_IODIRA = const(0x00)
_GPINTENA = const(0x04)
_IOCON = const(0x0A)
_GPIOA = const(0x12)
_OLATA = const(0x14)
_MIRROR_ODR = const(0x44)  # IOCON: INTA = INTB, open drain; sequential addressing


class Mcp23017:
    def __init__(self, i2c, addr, outputs):
        self._i2c = i2c
        self.addr = addr
        self._word = bytearray(2)
        self.latch = 0  # what the outputs are set to
        i2c.writeto_mem(addr, _IOCON, bytes((_MIRROR_ODR,)))
        # The latch as the chip holds it: 0 after power-on (pins are inputs, bolts
        # stay as they are), the locks' last levels after the ESP32 alone was reset
        # (a watchdog reset: the chip kept its power). Writing 0 there opened every
        # bolt for a moment and the dock reported each docked bike's latch lost.
        i2c.readfrom_mem_into(addr, _OLATA, self._word)
        self.latch = (self._word[0] | (self._word[1] << 8)) & outputs
        self._write(_OLATA, self.latch)
        self._write(_IODIRA, 0xFFFF & ~outputs)
        self._write(_GPINTENA, 0xFFFF & ~outputs)
        self.read()  # clears an interrupt left from before this boot

    def _write(self, reg, v):
        w = self._word
        w[0] = v & 0xFF
        w[1] = v >> 8
        self._i2c.writeto_mem(self.addr, reg, w)

    def read(self):
        """Both ports' levels; reading them releases the chip's INT."""
        self._i2c.readfrom_mem_into(self.addr, _GPIOA, self._word)
        return self._word[0] | (self._word[1] << 8)

    def set(self, bit, v):
        self.latch = (self.latch | (1 << bit)) if v else (self.latch & ~(1 << bit))
        self._write(_OLATA, self.latch)
