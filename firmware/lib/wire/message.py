# The one message model between devices and the edge (docs/protocol.md).
# JSON objects with a type field "t"; decode() validates shape and size and
# raises DecodeError(reason) on anything else, so callers count and drop.
from micropython import const

import json

_MAX_MESSAGE = const(1024)

# Names for the types, events and reasons below are in wire/names.py (for the
# edge and tests); here they are literals: on a 64K device every module-level
# name costs heap, and this module is loaded by every device.

# Slot states, one character per slot in "state" messages (docs/protocol.md):
# E empty, L bike locked (rentable), U in transition (unlocked for a rider, or
# a bike arriving), F fault without bike, X fault holding a bike, D disabled,
# B disabled holding a bike.
SLOT_CHARS = "ELUFXDB"
_SLOT_BYTES = b"ELUFXDB"


# type -> fields; prefix "#" int, "?" bool, "*" any JSON value, none str;
# suffix "~" optional. Everything the edge sends a device carries "mac" (and a
# command its counter "ctr"): wire/auth.py; hello tells the edge the last
# counter the device accepted.
# Kept as strings: tuples of tuples cost several KiB of a device's heap.
SCHEMA = {
    "hello": "dev kind fw #slots #boot epoch ota~ #ctr~",
    "state": "dev #boot #n slots #up~ #mem~ #low~ #q~ #qmax~",
    "ev": "dev epoch #seq ev #slot bike~ code~ #up~ #at~",
    "status": "dev ?online #boot~",
    "cmd": "#id op #slot~ ?enabled~ path~ #off~ *data~ #ctr~ mac~",
    "ack": "epoch #seq #now~ mac~",
    "time": "#now mac~",
    "res": "dev #id ?ok err~ #slot~ #ctr~",
}
# Time (docs/protocol.md): the edge's clock in whole seconds ("now") comes in
# "time" (after a hello) and in acks; a device keeps it as an offset on its
# ticks and stamps each event with when it happened ("at"), or leaves "at" out
# when it has not heard the edge's time since it booted.
# Kiosk-only types are added by wire/kiosk_messages.py (kiosks and the edge
# import it): a dock never loads their names.

# Decode failure reasons (counted by the receiver): "oversize", "json",
# "unknown_type", "bad_field".


class DecodeError(ValueError):
    def __init__(self, reason, msg=""):
        super().__init__(reason + (": " + msg if msg else ""))
        self.reason = reason


def check(msg):
    """Validate a message object; returns it or raises DecodeError."""
    if not isinstance(msg, dict):
        raise DecodeError("bad_field", "not an object")
    t = msg.get("t")
    spec = SCHEMA.get(t) if isinstance(t, str) else None
    if spec is None:
        raise DecodeError("unknown_type", str(t)[:20])
    for field in spec.split(" "):
        k = field[0]
        name = field[1:] if k in "#?*" else field
        optional = name[-1] == "~"
        if optional:
            name = name[:-1]
        v = msg.get(name)
        if v is None:
            if not optional:
                raise DecodeError("bad_field", "%s.%s missing" % (t, name))
        elif k == "*":
            pass
        elif not (isinstance(v, str) and len(v) <= 200 if k != "#" and k != "?" else
                  isinstance(v, bool) if k == "?" else
                  isinstance(v, int) and not isinstance(v, bool) and -(1 << 53) < v < (1 << 53)):
            raise DecodeError("bad_field", "%s.%s" % (t, name))
    if t == "ev" and msg["ev"] not in ("rented", "returned", "fault"):
        raise DecodeError("bad_field", "ev.ev")
    if t == "cmd" and msg["op"] not in ("unlock", "set_slot", "reboot", "hello", "ota"):
        raise DecodeError("bad_field", "cmd.op")
    if t == "state":
        # Byte by byte: iterating a str interns each character on MicroPython,
        # so garbage from outside would grow the heap for good (tests/fuzz).
        for c in msg["slots"].encode():
            if c not in _SLOT_BYTES:
                raise DecodeError("bad_field", "state.slots")
    return msg


def decode(data):
    if len(data) > _MAX_MESSAGE:
        raise DecodeError("oversize", "%d bytes" % len(data))
    try:
        msg = json.loads(data)
    except (ValueError, RuntimeError) as exc:  # bad UTF-8; nesting past CPython's recursion
        raise DecodeError("json", str(exc)[:40])
    return check(msg)


def encode(msg):
    try:
        # CPython escapes Chinese as \uXXXX (6 bytes a character) unless told not to.
        data = json.dumps(check(msg), separators=(",", ":"),  # type: ignore[call-overload]
                          ensure_ascii=False)  # (CPython only: the except is MicroPython's)
    except TypeError:  # MicroPython writes UTF-8 already and has no such option
        data = json.dumps(check(msg), separators=(",", ":"))
    if not isinstance(data, bytes):
        data = data.encode()
    if len(data) > _MAX_MESSAGE:
        raise ValueError("message too large: %d" % len(data))
    return data
