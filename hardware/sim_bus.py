"""The simulation bus between a dock's firmware (unix port) and its emulated
hardware: one TCP connection per dock on loopback carrying packets
``[channel:1][length:1][payload]``. Channel 0 carries GPIO levels as
``[pin_hi pin_lo value]`` triples in both directions (outputs from the
firmware, inputs from the emulator); channel n >= 1 carries the raw bytes of
UART n (tag reader of slot n-1, RDM6300 frames)."""

from __future__ import annotations

from collections.abc import Sequence

GPIO = 0
MAX_PAYLOAD = 255


def gpio_packet(levels: Sequence[tuple[int, int | bool]]) -> bytes:
    out = bytearray()
    for start in range(0, len(levels), MAX_PAYLOAD // 3):
        chunk = levels[start:start + MAX_PAYLOAD // 3]
        out += bytes((GPIO, 3 * len(chunk)))
        for pin, v in chunk:
            out += bytes((pin >> 8, pin & 0xFF, 1 if v else 0))
    return bytes(out)


def uart_packet(channel: int, data: bytes) -> bytes:
    out = bytearray()
    for start in range(0, len(data), MAX_PAYLOAD):
        chunk = data[start:start + MAX_PAYLOAD]
        out += bytes((channel, len(chunk))) + chunk
    return bytes(out)
