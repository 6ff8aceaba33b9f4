"""CPython stand-in for MicroPython's built-in `micropython` module, so the
shared firmware modules (wire codec, slot state machine) import unchanged on
the edge and in tests. Only `const` is provided; it is never shipped to a
device (tools/firmware.py builds lib/, drivers/ and apps/ only)."""

from typing import TypeVar

T = TypeVar("T")


def const(x: T) -> T:
    return x
