"""The one door to every device: whatever the edge tells a device (acks, clock
syncs, hellos, commands, the kiosks' station figures and fund answers) goes
through DeviceLinks, and nothing else calls a transport's Reply.

- It knows where to answer each device: the link it was last heard on.
- Messages to one device leave in the order they were given. A message may wait
  for a commit first (an ack only once its event is on disk); what comes after
  it for that device waits too, and other devices do not.
- Commands are numbered here and their results matched to them.

It sees typed messages and the codec's dicts; transports do the bytes and topics."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from wire import message

from edge.core.errors import Rejected
from edge.core.messages import Command, DownMessage, Result, to_wire
from edge.core.metrics import Metrics
from edge.core.ports import Reply

COMMAND_IDS = 1 << 30
IN_FLIGHT = 256  # sends handed to the links and not yet finished
QUEUED_MAX = 100_000  # messages waiting behind commits, every device together

# Whether a gated message may go: it waits for the future, and goes if it is True
# (an ack: its event's batch committed). One gate serves every ack of a batch.
Gate = asyncio.Future[bool]


# Not frozen, for speed, as EventRecord (edge/core/records.py): one for every ack.
@dataclass(slots=True)
class _Queued:
    device: str
    reply: Reply
    msg: DownMessage
    gate: Gate | None


class DeviceLinks:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._routes: dict[str, Reply] = {}
        # A result answers the command of that id sent to that device, and no other: one
        # device's key cannot settle another's unlock. Ids are random (below 2**30: a
        # small int on a 32-bit board), so they cannot be guessed from the last one.
        self._pending: dict[tuple[str, int], asyncio.Future[Result]] = {}
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._behind: dict[str, int] = {}  # device -> its messages in the queue
        # Progress, for the watchdog (edge/core/liveness.py).
        self.sent = 0

    # -- where a device is ---------------------------------------------------------
    def heard(self, dev: str, reply: Reply) -> None:
        self._routes[dev] = reply

    def reachable(self, dev: str) -> bool:
        return dev in self._routes

    # -- sending ----------------------------------------------------------------------
    def post(self, dev: str, msg: DownMessage, gate: Gate | None = None,
             reply: Reply | None = None) -> None:
        """Queue `msg` for `dev`, after whatever was posted for it before; with
        `gate`, sent only if the gate says so. `reply`: the link the message came
        in on (an ack answers on that link), else the device's last."""
        reply = reply or self._routes.get(dev)
        if reply is None:
            raise Rejected("no_route", f"device {dev} has not been heard from")
        if self._queue.qsize() >= QUEUED_MAX:
            self.metrics.inc("tx.dropped", "queue_full")  # the device resends, or asks again
            return
        self._behind[dev] = self._behind.get(dev, 0) + 1
        self._queue.put_nowait(_Queued(dev, reply, msg, gate))

    async def send(self, dev: str, msg: DownMessage) -> None:
        """Send now, unless earlier messages for this device still wait for their
        commits: then in its turn. Raises Rejected when the device was never heard."""
        reply = self._routes.get(dev)
        if reply is None:
            raise Rejected("no_route", f"device {dev} has not been heard from")
        if self._behind.get(dev):
            self.post(dev, msg, reply=reply)
            return
        self.sent += 1
        await reply(to_wire(msg))

    def waiting(self) -> int:
        return self._queue.qsize()

    async def drained(self, timeout_s: float) -> None:
        """At shutdown: let what is queued (acks of stored events) go before the links."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        except TimeoutError:
            pass

    async def run(self) -> None:
        """The queue's sender. A send is not waited for one by one: an MQTT ack's
        PUBACK is a broker round trip, and waiting for each capped ingest at ~1,500
        events/s (bench/ingest.py). A lost ack costs a resend, refused as a
        duplicate."""
        sending: set[asyncio.Future[None]] = set()
        while True:
            if len(sending) >= IN_FLIGHT:
                await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
            # A batch's acks come hundreds at a time, their gate already open: no
            # coroutine for each (a tenth of the loop's time in a backlog).
            q = self._queue.get_nowait() if self._queue.qsize() else await self._queue.get()
            self.sent += 1
            try:
                gate = q.gate
                if gate is not None and not (_passed(gate) if gate.done()
                                             else await _opened(gate)):
                    continue
                if not q.reply.blocks:
                    await q.reply(to_wire(q.msg))  # queued at once (an MQTT reply)
                    continue
                t = asyncio.ensure_future(q.reply(to_wire(q.msg)))
                sending.add(t)
                t.add_done_callback(sending.discard)
            finally:
                left = self._behind.get(q.device, 1) - 1
                if left:
                    self._behind[q.device] = left
                else:
                    self._behind.pop(q.device, None)
                self._queue.task_done()

    # -- commands -------------------------------------------------------------------
    def new_command(self, op: str, dev: str = "", **args: Any) -> Command:
        while True:
            cid = secrets.randbelow(COMMAND_IDS - 1) + 1
            if (dev, cid) not in self._pending:
                return Command(cid, op, **args)

    def answered(self, result: Result) -> None:
        fut = self._pending.pop((result.dev, result.id), None)
        if fut is None:
            # No command of that id is waiting for that device (late, or not its own).
            self.metrics.inc("commands.unmatched_result")
            return
        if not fut.done():
            fut.set_result(result)

    async def command(self, dev: str, op: str, wait_s: float = 5.0, **args: Any) -> Result:
        """Send a command and wait for the device's result. A command the device
        refused as numbered below its floor (sent while it rebooted) is sent
        once more, numbered above it. Raises Rejected (no route) or TimeoutError."""
        res = await self._command_once(dev, op, wait_s, **args)
        if res.err == "stale_ctr":
            self.metrics.inc("commands.renumbered")
            res = await self._command_once(dev, op, wait_s, **args)
        return res

    async def _command_once(self, dev: str, op: str, wait_s: float, **args: Any) -> Result:
        cmd = self.new_command(op, dev, **args)
        message.check(to_wire(cmd))  # a bad argument is our bug: fail here, not at the dock
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending[(dev, cmd.id)] = fut
        try:
            await self.send(dev, cmd)
            async with asyncio.timeout(wait_s):
                return await fut
        finally:
            self._pending.pop((dev, cmd.id), None)


async def _opened(gate: Gate) -> bool:
    """Whether the gate let its message go: True, once it is set; never for a gate
    that failed or was cancelled (awaited directly, a cancelled gate would look
    like the sender's own cancellation)."""
    if not gate.done():
        await asyncio.wait((gate,))
    return _passed(gate)


def _passed(gate: Gate) -> bool:
    """A set gate's verdict."""
    return not gate.cancelled() and gate.exception() is None and gate.result()
