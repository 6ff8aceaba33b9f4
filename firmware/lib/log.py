# Tiny logger for the devices (MicroPython has no logging module). One line per
# record, "LEVEL ticks name: text", on the console a technician reads. Kept to
# one small class: on a 64K device every method and name costs heap.
import time

try:
    _ms = time.ticks_ms
except AttributeError:  # CPython, where tests run device code such as the journal
    def _ms():
        return int(time.monotonic() * 1000)  # type: ignore[attr-defined]  # CPython only


class Logger:
    def __init__(self, name):
        self.name = name

    def _out(self, t, msg, args):
        print(t, _ms(), self.name + ":", msg % args if args else msg)

    def info(self, msg, *args):
        self._out("I", msg, args)

    def warning(self, msg, *args):
        self._out("W", msg, args)

    def error(self, msg, *args):
        self._out("E", msg, args)

    def exc(self, e, name):
        self._out("E", "%s: %s %r", (name, type(e).__name__, e))


def get(name):
    return Logger(name)
