# The device obeys only its edge (docs/security.md): every message from the
# edge must carry a valid MAC under this device's key (wire/auth.py), and a
# command must carry a counter above the last one accepted, so a recorded
# command cannot be replayed nor two be swapped. The same check on serial and
# MQTT: both uplinks call refuse() before the app sees a message.
#
# The counter survives reboots without wearing flash: the file holds a ceiling
# reserved _WINDOW commands ahead, written before the command that crosses it
# is obeyed. After a reboot everything up to the ceiling counts as used, and
# hello tells the edge so (its "ctr"), and the edge numbers on from there; a
# command sent before that hello is answered "stale_ctr" with the floor, and
# the edge sends it again above it.
import os
from binascii import unhexlify

from micropython import const

import log
from wire import auth

_WINDOW = const(64)  # one flash write per 64 commands
# No edge numbers anywhere near this (its counters start from the clock in ms, ~2**41).
# A counter at or above it is stale, so no floor can ever near the wire's 2**53; and a
# damaged counter file reads as this, so every command is stale: it fails closed.
_CTR_MAX = const(1 << 50)
_log = log.get("guard")


class CommandGuard:
    def __init__(self, key_hex, dev, path="cmd_ctr"):
        self.key = auth.Key(unhexlify(key_hex))
        self.dev = dev
        self.path = path
        self.last = 0  # never written: a new device
        try:
            with open(path) as f:
                self.last = int(f.read())
        except OSError:
            pass
        except ValueError:
            self.last = -1
        if not 0 <= self.last < _CTR_MAX:
            # Read as 0, every command ever recorded could be replayed. Refused until
            # provisioned again (a new key starts the counter over); returns still work.
            _log.error("%s damaged: commands refused", path)
            self.last = _CTR_MAX
        self.ceiling = self.last
        self.refused = 0

    def refuse(self, payload, msg):
        """None when msg (decoded from payload) may be acted on, else why not
        (counted and logged, without the message's content)."""
        why = None
        if not auth.verify(self.key, auth.DOWN, payload):
            why = "bad mac"
        elif msg["t"] == "cmd":
            n = msg.get("ctr")
            if n is None or n <= self.last or n >= _CTR_MAX:
                why = "stale: replayed or reordered (ctr %r, last %d)" % (n, self.last)
            else:
                if n >= self.ceiling:
                    self._reserve(n + _WINDOW)
                self.last = n
        if why:
            self.refused += 1
            _log.warning("refused %s from edge: %s (%d refused)", msg["t"], why, self.refused)
        return why

    def admit(self, payload, msg, send):
        """True when msg may be acted on; else False, after answering through
        send() what the edge should hear (the uplinks call this)."""
        why = self.refuse(payload, msg)
        if not why:
            return True
        a = self.answer(msg, why)
        if a:
            send(a)
        return False

    def answer(self, msg, why):
        """What to tell the edge about a refused message, or None. A command
        with a valid MAC but a used counter is the edge's own, sent before it
        heard our floor (say, just after a reboot): it learns the floor and
        sends the command again. A bad MAC gets no answer."""
        if why[0] == "s":
            return {"t": "res", "dev": self.dev, "id": msg["id"], "ok": False,
                    "err": "stale_ctr", "ctr": self.last}
        return None

    def _reserve(self, ceiling):
        # Written, then renamed: a power cut leaves the old ceiling or the new one.
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            f.write(str(ceiling))
        os.rename(tmp, self.path)
        self.ceiling = ceiling
