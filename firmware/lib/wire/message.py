# The one message model between devices and the edge (docs/protocol.md).
# JSON objects with a type field "t"; decode() validates shape and size and
# raises DecodeError(reason) on anything else, so callers count and drop.
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

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

# type -> ((field, kind, required), ...); kinds: s=str i=int b=bool
_S = "s"
_I = "i"
_B = "b"
SCHEMA = {
    HELLO: (("dev", _S, 1), ("kind", _S, 1), ("fw", _S, 1), ("slots", _I, 1),
            ("boot", _I, 1), ("epoch", _S, 1)),
    STATE: (("dev", _S, 1), ("boot", _I, 1), ("n", _I, 1), ("slots", _S, 1),
            ("up", _I, 0)),
    EVENT: (("dev", _S, 1), ("epoch", _S, 1), ("seq", _I, 1), ("ev", _S, 1),
            ("slot", _I, 1), ("bike", _S, 0), ("code", _S, 0), ("up", _I, 0)),
    STATUS: (("dev", _S, 1), ("online", _B, 1), ("boot", _I, 0)),
    COMMAND: (("id", _I, 1), ("op", _S, 1), ("slot", _I, 0), ("enabled", _B, 0)),
    ACK: (("epoch", _S, 1), ("seq", _I, 1)),
    RESULT: (("dev", _S, 1), ("id", _I, 1), ("ok", _B, 1), ("err", _S, 0),
             ("slot", _I, 0)),
}

# Decode failure reasons (counted by the receiver).
E_SIZE = "oversize"
E_JSON = "json"
E_TYPE = "unknown_type"
E_FIELD = "bad_field"


class DecodeError(ValueError):
    def __init__(self, reason, detail=""):
        ValueError.__init__(self, reason + (": " + detail if detail else ""))
        self.reason = reason


def _kind_ok(v, k):
    if k == _S:
        return isinstance(v, str) and len(v) <= 200
    if k == _B:
        return isinstance(v, bool)
    return isinstance(v, int) and not isinstance(v, bool) and -(1 << 53) < v < (1 << 53)


def check(msg):
    """Validate a message object; returns it or raises DecodeError."""
    if not isinstance(msg, dict):
        raise DecodeError(E_FIELD, "not an object")
    t = msg.get("t")
    spec = SCHEMA.get(t) if isinstance(t, str) else None
    if spec is None:
        raise DecodeError(E_TYPE, str(t)[:20])
    for name, kind, required in spec:
        v = msg.get(name)
        if v is None:
            if required:
                raise DecodeError(E_FIELD, "%s.%s missing" % (t, name))
        elif not _kind_ok(v, kind):
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
