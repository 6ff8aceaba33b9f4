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
# No edge numbers anywhere near this (its counters start from the clock in ms, ~2**41):
# a counter at or above it is refused, so no floor can ever near the wire's 2**53.
_CTR_MAX = 1 << 50
_log = log.get("guard")


class CommandGuard:
    def __init__(self, key_hex, dev, path="cmd_ctr"):
        self.key = auth.Key(unhexlify(key_hex))
        self.dev = dev
        self.path = path
        # A damaged counter file fails closed: reading it as 0 would let every command
        # ever recorded be replayed. Commands are refused (the edge hears
        # "ctr_damaged") until the device is provisioned again; returns still work.
        self.damaged = False
        self.last = 0
        try:
            with open(path) as f:
                self.last = int(f.read())
        except OSError:
            pass  # never written: a new device
        except ValueError:
            self.damaged = True
        if not 0 <= self.last < _CTR_MAX:
            self.damaged, self.last = True, 0
        if self.damaged:
            _log.error("%s is damaged: commands refused until provisioned again", path)
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
            if self.damaged:
                why = "counter file damaged"
            elif n is not None and n >= _CTR_MAX:
                why = "counter %d beyond any edge's" % n
            elif n is None or n <= self.last:
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
        if why[0] == "c" and msg["t"] == "cmd":
            return {"t": "res", "dev": self.dev, "id": msg["id"], "ok": False,
                    "err": "ctr_damaged" if self.damaged else "bad_ctr"}
        return None

    def _reserve(self, ceiling):
        # Written, then renamed: a power cut leaves the old ceiling or the new one.
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            f.write(str(ceiling))
        os.rename(tmp, self.path)
        self.ceiling = ceiling
