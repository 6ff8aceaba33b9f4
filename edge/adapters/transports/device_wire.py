"""Device messages' bytes, both ways, as the edge handles them: a message in is
believed only if the shared codec decodes it, it is of the type its topic
says and its device's key sealed it (`check`); a message out is encoded and
sealed with its device's key (`seal`). Each is written once for the edge, here
(on the shared codec; its faster paths are held byte-equal to the devices' own by
tests), and runs in the edge's own process or in a worker process beside it
(`WireWorker`).

Why a worker: an outage's backlog comes tens of thousands of messages at a
time, and checking each and sealing its ack were over half of what the
edge's event loop did per event (bench/ingest.py's profile). On a Pi's four
cores the MQTT transport hands whole socket reads (and each turn's replies)
to the worker, goes on reading, and takes the results back in order. The
worker holds nothing of its own: each message comes with its device's key as
the edge has it now (a re-provisioned key counts at once), and each command
with the counter the edge numbered it with.

Between the two processes: a 4-byte length, then `marshal` of plain tuples
(our own processes, our own Python: marshal carries nothing but values, and is
several times faster than pickle).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import marshal
import os
import struct
import sys
from binascii import hexlify
from collections import deque
from typing import Any, BinaryIO

from wire import auth, message

from edge.core import messages

_LEN = struct.Struct(">I")
# The up messages' classes, by their place here (what crosses the pipe).
_CLASSES: tuple[type[messages.UpMessage], ...] = (
    messages.Hello, messages.State, messages.Event, messages.Result, messages.Status,
    messages.Lookup)
_INDEX = {cls: i for i, cls in enumerate(_CLASSES)}
_KEYS_MAX = 10_000  # keys kept ready (their HMAC pads made) per process
CHECK, SEAL = 0, 1  # what a request to the worker asks

# What `check` returns: (True, class index, fields) for a message to believe, or
# (False, reason, detail) for one dropped ("json", "bad_field", "wrong_topic",
# "bad_mac", ...: the counters' reasons).
Checked = tuple[bool, Any, Any]
# What a SEAL request gives for each reply: (True, the bytes) or (False, why not).


class FastKey(auth.Key):  # type: ignore[misc]
    """auth.Key's tag, from SHA-256 states of its two pads kept ready: two
    compressions fewer a tag (1.4 -> 0.9 us; two tags an event). The devices'
    own Key cannot keep hash states (MicroPython's cannot be copied);
    tests/edge/test_device_wire.py holds the tags equal."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self._inner = hashlib.sha256(self._i)
        self._outer = hashlib.sha256(self._o)

    def tag(self, label: bytes, data: bytes | memoryview) -> bytes:
        h = self._inner.copy()
        h.update(label)
        h.update(data)
        o = self._outer.copy()
        o.update(h.digest())
        return hexlify(o.digest()[:_TAG_HEX // 2])


class KeyRing:
    """Device keys ready for HMAC, by their bytes (made once, bounded)."""

    def __init__(self) -> None:
        self._ready: dict[bytes, auth.Key] = {}

    def __call__(self, raw: bytes) -> auth.Key:
        key = self._ready.get(raw)
        if key is None:
            if len(self._ready) >= _KEYS_MAX:
                self._ready.clear()
            key = self._ready[raw] = FastKey(raw)
        return key


def check(expected_type: str, key: auth.Key, data: bytes) -> Checked:
    """One device message's bytes: decoded and checked by the codec, of the
    type its topic says, sealed with `key`."""
    try:
        msg = _decode(data)
    except message.DecodeError as exc:
        return False, exc.reason, str(exc)
    if msg["t"] != expected_type:
        return False, "wrong_topic", f"a {msg['t']} message"
    if not _verify(key, data):
        return False, "bad_mac", "its MAC is wrong"
    try:
        typed = messages.parse(msg)
    except message.DecodeError as exc:
        return False, exc.reason, str(exc)
    return True, _INDEX[type(typed)], tuple(getattr(typed, f) for f in typed.__slots__)


def typed(checked: Checked) -> messages.UpMessage:
    """The message a successful check describes."""
    return _CLASSES[checked[1]](*checked[2])


def seal(key: auth.Key, msg: dict[str, Any]) -> bytes:
    """A message to a device (the codec's dict, a command already numbered), as
    the device accepts it. ValueError (DecodeError) for one the codec refuses."""
    body = _COMPACT.encode(_check(msg)).encode()
    if len(body) > _MAX_MESSAGE:
        raise ValueError(f"message too large: {len(body)}")
    n = len(body) - 1
    tag: bytes = key.tag(auth.DOWN, body[:n])
    return body[:n] + _MARK + tag + b'"}'


# The codec's encode and the seal (wire/message.py, wire/auth.py) write a device's
# bytes with a JSON encoder made per message and a buffer filled piece by piece
# (what a device can afford); here with CPython's own, the same bytes
# (tests/edge/test_device_wire.py holds them equal for any message), a third faster.
# The check compares tags in C, in constant time, as auth.verify does in Python.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_MARK = b',"mac":"'
_TAG_HEX = 32
_MAX_MESSAGE = 1024


def _decode(data: bytes) -> dict[str, Any]:
    """message.decode, with the schema worked out once a type (_check)."""
    if len(data) > _MAX_MESSAGE:
        raise message.DecodeError("oversize", f"{len(data)} bytes")
    try:
        msg = json.loads(data)
    except (ValueError, RuntimeError) as exc:  # bad UTF-8; nesting past the recursion limit
        raise message.DecodeError("json", str(exc)[:40]) from None
    return _check(msg)


# A field's kind in a worked-out schema (wire/message.py's prefixes).
_TEXT, _WHOLE, _FLAG, _ANY = 0, 1, 2, 3
_KINDS = {"#": _WHOLE, "?": _FLAG, "*": _ANY}
_LIMIT = 1 << 53
_specs: dict[str, tuple[str, tuple[tuple[str, int, bool], ...]]] = {}


def _spec(t: str, text: str) -> tuple[tuple[str, int, bool], ...]:
    """A type's schema string as (name, kind, optional) once: the codec reads it
    again for each message (it costs a device no heap so)."""
    got = _specs.get(t)
    if got is None or got[0] != text:  # new, or changed (the kiosk types are added)
        fields = []
        for field in text.split(" "):
            kind = _KINDS.get(field[0], _TEXT)
            name = field[1:] if kind != _TEXT else field
            optional = name.endswith("~")
            fields.append((name.rstrip("~") if optional else name, kind, optional))
        got = _specs[t] = (text, tuple(fields))
    return got[1]


def _check(msg: Any) -> dict[str, Any]:
    """message.check's verdict, reason and words for any value, a third of its
    time (tests/edge/test_device_wire.py holds them equal)."""
    if not isinstance(msg, dict):
        raise message.DecodeError("bad_field", "not an object")
    t = msg.get("t")
    text = message.SCHEMA.get(t) if isinstance(t, str) else None
    if text is None or not isinstance(t, str):
        raise message.DecodeError("unknown_type", str(t)[:20])
    for name, kind, optional in _spec(t, text):
        v = msg.get(name)
        if v is None:
            if not optional:
                raise message.DecodeError("bad_field", f"{t}.{name} missing")
        elif kind == _TEXT:
            if not (isinstance(v, str) and len(v) <= 200):
                raise message.DecodeError("bad_field", f"{t}.{name}")
        elif kind == _WHOLE:
            if not (isinstance(v, int) and not isinstance(v, bool) and -_LIMIT < v < _LIMIT):
                raise message.DecodeError("bad_field", f"{t}.{name}")
        elif kind == _FLAG and not isinstance(v, bool):
            raise message.DecodeError("bad_field", f"{t}.{name}")
    # The values' own rules, as the codec has them.
    if t == "ev" and msg["ev"] not in _EVENTS:
        raise message.DecodeError("bad_field", "ev.ev")
    if t == "cmd" and msg["op"] not in _OPS:
        raise message.DecodeError("bad_field", "cmd.op")
    if t == "state" and msg["slots"].strip(message.SLOT_CHARS):
        raise message.DecodeError("bad_field", "state.slots")
    return msg


_EVENTS = ("rented", "returned", "fault")
_OPS = ("unlock", "set_slot", "reboot", "hello", "ota")


def _verify(key: auth.Key, data: bytes) -> bool:
    i = data.rfind(_MARK)
    end = len(data) - 2
    if i < 1 or end - (i + len(_MARK)) != _TAG_HEX or data[end:] != b'"}':
        return False
    return hmac.compare_digest(key.tag(auth.UP, memoryview(data)[:i]),
                               data[i + len(_MARK):end])


# -- the worker process -------------------------------------------------------------


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    """The worker: requests in, results out, in order, until its input ends.
    A request is (CHECK, [(expected type, key, bytes)]) or (SEAL, [(key, message)])."""
    keys = KeyRing()
    while True:
        head = inp.read(4)
        if len(head) < 4:
            return  # the edge is gone (or closed us): so are we
        (n,) = _LEN.unpack(head)
        kind, batch = marshal.loads(inp.read(n))
        results: list[Any] = []
        for item in batch:
            try:
                if kind == CHECK:
                    expected, raw, data = item
                    results.append(check(expected, keys(raw), data))
                else:
                    raw, msg = item
                    results.append((True, seal(keys(raw), msg)))
            except Exception as exc:  # a bug must not end the worker for everyone
                why = f"{type(exc).__name__}: {exc}"[:200]
                results.append((False, "error", why) if kind == CHECK else (False, why))
        body = marshal.dumps(results)
        out.write(_LEN.pack(len(body)) + body)
        out.flush()


class WorkerError(Exception):
    """The worker ended or failed; the transport starts another, with a new
    session (unacknowledged messages come again from the broker)."""


class WireWorker:
    """The worker, seen from the edge: `submit` a request, `result` gives each
    request's results back in the order submitted."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._waiting: deque[int] = deque()  # sizes of requests sent, not yet answered
        self.started = 0  # its generation: how many times it was started

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        # The same interpreter and import path as the edge (a venv, a checkout);
        # nothing secret on its command line or in its environment.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge.adapters.transports.device_wire",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            limit=1 << 22)
        self._waiting.clear()
        self.started += 1

    def submit(self, kind: int, batch: list[Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise WorkerError("the wire worker is not running")
        body = marshal.dumps((kind, batch))
        proc.stdin.write(_LEN.pack(len(body)) + body)
        self._waiting.append(len(batch))

    async def result(self) -> list[Any]:
        """The oldest request's results; WorkerError if the worker has ended."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise WorkerError("the wire worker is not running")
        try:
            head = await proc.stdout.readexactly(4)
            body = await proc.stdout.readexactly(_LEN.unpack(head)[0])
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise WorkerError(f"the wire worker ended (exit {proc.returncode})") from exc
        results: list[Any] = marshal.loads(body)
        if not self._waiting or len(results) != self._waiting.popleft():
            raise WorkerError("the wire worker's answer does not match its request")
        return results

    async def drain(self) -> None:
        """Waits while the pipe to the worker is full (it is behind)."""
        if self._proc is not None and self._proc.stdin is not None:
            try:
                await self._proc.stdin.drain()
            except ConnectionError as exc:
                raise WorkerError("the wire worker ended") from exc

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        self._waiting.clear()
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()  # its input ends: it exits
        try:
            async with asyncio.timeout(2.0):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
