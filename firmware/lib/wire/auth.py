# Message authentication between the edge and one device (docs/security.md),
# both ways: HMAC-SHA256 with the device's own key (made by `huimin provision`),
# over a direction label and the message's exact encoded bytes. The sender encodes the
# message, then puts ,"mac":"<hex>" before its closing brace; the receiver checks the bytes
# before that field. Nothing is re-encoded, so the two interpreters' different
# JSON key orders cannot matter. Sans-IO: the same file runs on both.
# MicroPython has no hmac module; RFC 2104 is built here from hashlib.
import hashlib
from binascii import hexlify

from micropython import const

_MARK = b',"mac":"'
_TAG_HEX = const(32)  # 128-bit tags: HMAC truncated to half, as RFC 2104 allows
# Direction labels: a tag made for one direction never verifies in the other.
DOWN = b"d"  # edge -> device (commands, acks, answers)
UP = b"u"  # device -> edge


class Key:
    """A device key with its HMAC pads computed once (no allocation per check
    beyond two hash objects)."""

    def __init__(self, key):
        if len(key) < 16:
            raise ValueError("key too short")
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        pad = bytearray(64)
        pad[:len(key)] = key
        self._i = bytes(b ^ 0x36 for b in pad)
        self._o = bytes(b ^ 0x5C for b in pad)

    def tag(self, label, data):
        """Hex tag of label + data (data: bytes or a memoryview of them)."""
        h = hashlib.sha256(self._i)
        h.update(label)
        h.update(data)
        o = hashlib.sha256(self._o)
        o.update(h.digest())
        return hexlify(o.digest()[:_TAG_HEX // 2])  # only the half that is sent


def seal(key, label, data):
    """Encoded message bytes -> the same with its "mac" field appended (one
    new buffer: a device seals every message it sends)."""
    n = len(data) - 1
    if n < 1 or data[n] != 0x7D:  # "}"
        raise ValueError("not an encoded object")
    body = memoryview(data)[:n]
    out = bytearray(n + 10 + _TAG_HEX)
    out[:n] = body
    out[n:n + 8] = _MARK
    out[n + 8:n + 8 + _TAG_HEX] = key.tag(label, body)
    out[n + 8 + _TAG_HEX:] = b'"}'
    return out


def verify(key, label, data):
    """True when data ends in a "mac" field that matches the bytes before it."""
    i = data.rfind(_MARK)
    end = len(data) - 2
    if i < 1 or end - (i + len(_MARK)) != _TAG_HEX or data[end:] != b'"}':
        return False
    mv = memoryview(data)
    want = key.tag(label, mv[:i])
    got = mv[i + len(_MARK):end]
    diff = 0
    for j in range(_TAG_HEX):  # constant time: no early exit on the first wrong byte
        diff |= want[j] ^ got[j]
    return diff == 0
