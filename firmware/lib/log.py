# Tiny logger for the devices (MicroPython has no logging module). One line per
# record, "LEVEL name: text", on the console a technician reads with `huimin console`.
import time

DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40
level = INFO
_NAMES = {DEBUG: "D", INFO: "I", WARNING: "W", ERROR: "E"}


class Logger:
    def __init__(self, name):
        self.name = name

    def _log(self, lvl, fmt, args):
        if lvl < level:
            return
        msg = fmt % args if args else fmt
        print("%s %d %s: %s" % (_NAMES[lvl], time.ticks_ms(), self.name, msg))

    def debug(self, fmt, *args):
        self._log(DEBUG, fmt, args)

    def info(self, fmt, *args):
        self._log(INFO, fmt, args)

    def warning(self, fmt, *args):
        self._log(WARNING, fmt, args)

    def error(self, fmt, *args):
        self._log(ERROR, fmt, args)

    def exc(self, e, where):
        self._log(ERROR, "%s: %s %r", (where, type(e).__name__, e))


def get(name):
    return Logger(name)
