"""The check every device message gets before the edge believes it (decoded by
the shared codec, of the type its topic says, sealed with its device's key),
run in the edge's own process or in a worker process beside it.

`check` is that check, once: both places call it. An outage's backlog comes
tens of thousands of messages at a time; decoding and MAC-checking them is
about a third of what the edge's event loop does per message (bench/ingest.py's
profile), so on a Pi's four cores the MQTT transport hands whole socket reads
to `DecoderProcess`, keeps reading meanwhile, and takes the results back in
order. The worker holds nothing of its own: each message comes with its
device's key, as the edge has it now (a re-provisioned key counts at once).

Between the two processes: a 4-byte length, then `marshal` of plain tuples
(our own processes, our own Python; marshal is several times faster than
pickle and carries nothing but values).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import struct
import sys
from collections import deque
from typing import Any, BinaryIO

from wire import auth, message

from edge.core import messages

log = logging.getLogger("edge.mqtt")

_LEN = struct.Struct(">I")
# The up messages' classes, by their place here (what crosses the pipe).
_CLASSES: tuple[type[messages.UpMessage], ...] = (
    messages.Hello, messages.State, messages.Event, messages.Result, messages.Status,
    messages.Lookup)
_INDEX = {cls: i for i, cls in enumerate(_CLASSES)}
_KEYS_MAX = 10_000  # keys kept ready (their HMAC pads made) per process

# What `check` returns: (True, class index, fields) for a message to believe, or
# (False, reason, detail) for one dropped ("json", "bad_field", "wrong_topic",
# "bad_mac", ...: the counters' reasons).
Checked = tuple[bool, Any, Any]


class KeyRing:
    """Device keys ready for HMAC, by their bytes (made once, bounded)."""

    def __init__(self) -> None:
        self._ready: dict[bytes, auth.Key] = {}

    def __call__(self, raw: bytes) -> auth.Key:
        key = self._ready.get(raw)
        if key is None:
            if len(self._ready) >= _KEYS_MAX:
                self._ready.clear()
            key = self._ready[raw] = auth.Key(raw)
        return key


def check(expected_type: str, key: auth.Key, data: bytes) -> Checked:
    """One device message's bytes: decoded and checked by the codec, of the
    type its topic says, sealed with `key`."""
    try:
        msg = message.decode(data)
    except message.DecodeError as exc:
        return False, exc.reason, str(exc)
    if msg["t"] != expected_type:
        return False, "wrong_topic", f"a {msg['t']} message"
    if not auth.verify(key, auth.UP, data):
        return False, "bad_mac", "its MAC is wrong"
    try:
        typed = messages.parse(msg)
    except message.DecodeError as exc:
        return False, exc.reason, str(exc)
    return True, _INDEX[type(typed)], tuple(getattr(typed, f) for f in typed.__slots__)


def typed(checked: Checked) -> messages.UpMessage:
    """The message a successful check describes."""
    return _CLASSES[checked[1]](*checked[2])


# -- the worker process -------------------------------------------------------------


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    """The worker: requests in, results out, in order, until its input ends.
    A request is a list of (expected type, key bytes, message bytes)."""
    keys = KeyRing()
    while True:
        head = inp.read(4)
        if len(head) < 4:
            return  # the edge is gone (or closed us): so are we
        (n,) = _LEN.unpack(head)
        batch = marshal.loads(inp.read(n))
        results = []
        for expected, raw, data in batch:
            try:
                results.append(check(expected, keys(raw), data))
            except Exception as exc:  # a bug must not end the worker for everyone
                results.append((False, "error", f"{type(exc).__name__}: {exc}"[:200]))
        body = marshal.dumps(results)
        out.write(_LEN.pack(len(body)) + body)
        out.flush()


class DecoderError(Exception):
    """The worker ended or failed; the transport reconnects (unacked messages
    come again) and starts another."""


class DecoderProcess:
    """The worker, seen from the edge: `submit` a batch, `result` gives each
    batch's results back in the order submitted."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._waiting: deque[int] = deque()  # sizes of batches submitted, not yet answered
        self.started = 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    async def start(self) -> None:
        # The same interpreter and import path as the edge (a venv, a checkout);
        # nothing secret on its command line or in its environment.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge.adapters.transports.decoder",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            limit=1 << 22)
        self._waiting.clear()
        self.started += 1

    def submit(self, batch: list[tuple[str, bytes, bytes]]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise DecoderError("the decoding worker is not running")
        body = marshal.dumps(batch)
        proc.stdin.write(_LEN.pack(len(body)) + body)
        self._waiting.append(len(batch))

    async def result(self) -> list[Checked]:
        """The oldest batch's results; DecoderError if the worker has ended."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise DecoderError("the decoding worker is not running")
        try:
            head = await proc.stdout.readexactly(4)
            body = await proc.stdout.readexactly(_LEN.unpack(head)[0])
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise DecoderError(f"the decoding worker ended (exit {proc.returncode})") from exc
        results: list[Checked] = marshal.loads(body)
        if not self._waiting or len(results) != self._waiting.popleft():
            raise DecoderError("the decoding worker's answer does not match its request")
        return results

    async def drain(self) -> None:
        """Waits while the pipe to the worker is full (it is behind)."""
        if self._proc is not None and self._proc.stdin is not None:
            await self._proc.stdin.drain()

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
