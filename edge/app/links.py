"""The edge's side of every device link: where to answer each device (the
link it was last heard on), and commands with their results. Transports hand
over a `Reply` per device; this module never sees bytes or topics."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from wire import message

from edge.core.errors import Rejected
from edge.core.messages import Command, DownMessage, Result, to_wire
from edge.core.metrics import Metrics
from edge.core.ports import Reply

COMMAND_IDS = 1 << 30


class DeviceLinks:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._routes: dict[str, Reply] = {}
        # A result answers the command of that id sent to that device, and no other: one
        # device's key cannot settle another's unlock. Ids are random (below 2**30: a
        # small int on a 32-bit board), so they cannot be guessed from the last one.
        self._pending: dict[tuple[str, int], asyncio.Future[Result]] = {}

    def heard(self, dev: str, reply: Reply) -> None:
        self._routes[dev] = reply

    def reachable(self, dev: str) -> bool:
        return dev in self._routes

    async def send(self, dev: str, msg: DownMessage) -> None:
        reply = self._routes.get(dev)
        if reply is None:
            raise Rejected("no_route", f"device {dev} has not been heard from")
        await reply(to_wire(msg))

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
