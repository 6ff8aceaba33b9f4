# The one message model between devices and the edge (docs/protocol.md).
# JSON objects with a type field "t"; decode() validates shape and size and
# raises DecodeError(reason) on anything else, so callers count and drop.
from micropython import const

import json

MAX_MESSAGE = const(1024)

HELLO = "hello"
STATE = "state"
EVENT = "ev"
STATUS = "status"
COMMAND = "cmd"
ACK = "ack"
RESULT = "res"

RENTED = "rented"
RETURNED = "returned"
FAULT = "fault"

# Slot states as one character per slot in "state" messages.
SLOT_EMPTY = "E"  # no bike, lock open, accepting returns
SLOT_LOCKED = "L"  # bike present and locked: rentable
SLOT_UNLOCKING = "U"  # unlocked for a rider, bike not yet taken
SLOT_FAULT = "F"  # fault, no bike
SLOT_FAULT_BIKE = "X"  # fault with a bike held
SLOT_DISABLED = "D"  # disabled by an operator, no bike
SLOT_DISABLED_BIKE = "B"  # disabled by an operator, bike held
SLOT_CHARS = "ELUFXDB"

EVENTS = (RENTED, RETURNED, FAULT)
OPS = ("unlock", "set_slot", "reboot", "hello")

# type -> fields; prefix "#" int, "?" bool, none str; suffix "~" optional.
# Kept as strings: tuples of tuples cost several KiB of a device's heap.
SCHEMA = {
    HELLO: "dev kind fw #slots #boot epoch",
    STATE: "dev #boot #n slots #up~",
    EVENT: "dev epoch #seq ev #slot bike~ code~ #up~",
    STATUS: "dev ?online #boot~",
    COMMAND: "#id op #slot~ ?enabled~",
    ACK: "epoch #seq",
    RESULT: "dev #id ?ok err~ #slot~",
}

# Decode failure reasons (counted by the receiver).
E_SIZE = "oversize"
E_JSON = "json"
E_TYPE = "unknown_type"
E_FIELD = "bad_field"


class DecodeError(ValueError):
    def __init__(self, reason, detail=""):
        super().__init__(reason + (": " + detail if detail else ""))
        self.reason = reason


def _kind_ok(v, k):
    if k == "#":
        return isinstance(v, int) and not isinstance(v, bool) and -(1 << 53) < v < (1 << 53)
    if k == "?":
        return isinstance(v, bool)
    return isinstance(v, str) and len(v) <= 200


def check(msg):
    """Validate a message object; returns it or raises DecodeError."""
    if not isinstance(msg, dict):
        raise DecodeError(E_FIELD, "not an object")
    t = msg.get("t")
    spec = SCHEMA.get(t) if isinstance(t, str) else None
    if spec is None:
        raise DecodeError(E_TYPE, str(t)[:20])
    for field in spec.split(" "):
        k = field[0]
        name = field[1:] if k in "#?" else field
        optional = name[-1] == "~"
        if optional:
            name = name[:-1]
        v = msg.get(name)
        if v is None:
            if not optional:
                raise DecodeError(E_FIELD, "%s.%s missing" % (t, name))
        elif not _kind_ok(v, k):
            raise DecodeError(E_FIELD, "%s.%s" % (t, name))
    if t == EVENT and msg["ev"] not in EVENTS:
        raise DecodeError(E_FIELD, "ev.ev")
    if t == COMMAND and msg["op"] not in OPS:
        raise DecodeError(E_FIELD, "cmd.op")
    if t == STATE:
        for c in msg["slots"]:
            if c not in SLOT_CHARS:
                raise DecodeError(E_FIELD, "state.slots")
    return msg


def decode(data):
    if len(data) > MAX_MESSAGE:
        raise DecodeError(E_SIZE, "%d bytes" % len(data))
    try:
        msg = json.loads(data)
    except ValueError as exc:  # includes bad UTF-8 on CPython
        raise DecodeError(E_JSON, str(exc)[:40])
    return check(msg)


def encode(msg):
    data = json.dumps(check(msg), separators=(",", ":"))
    if not isinstance(data, bytes):
        data = data.encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError("message too large: %d" % len(data))
    return data
