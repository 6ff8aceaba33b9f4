"""The one door to the devices (edge/app/links.py), with plain values: messages
to one device leave in the order given; one that waits for its commit holds
back what comes after it for that device, and nothing of another's; a refused
gate sends nothing; a device never heard has no route."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edge.app.links import DeviceLinks
from edge.core.errors import Rejected
from edge.core.messages import Ack, ClockSync, FundsAnswer, Near
from edge.core.metrics import Metrics
from edge.core.ports import ReplyBy
from tests.conftest import run


class Link:
    def __init__(self, blocks: bool) -> None:
        self.got: list[dict[str, Any]] = []
        self.reply = ReplyBy(self._send, blocks)

    async def _send(self, msg: dict[str, Any]) -> None:
        self.got.append(msg)


def test_one_devices_messages_keep_their_order_behind_a_commit() -> None:
    async def main() -> None:
        links = DeviceLinks(Metrics())
        a, b = Link(blocks=False), Link(blocks=True)
        links.heard("dock-a", a.reply)
        links.heard("dock-b", b.reply)
        committed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        sender = asyncio.create_task(links.run())
        links.post("dock-a", Ack("e1", 1), gate=committed)  # waits for its event's commit
        await links.send("dock-a", Near((("站", 1, 2),)))  # after the ack, so it waits too
        await links.send("dock-b", ClockSync(5))  # another device: not held back
        await asyncio.sleep(0.01)
        assert a.got == [] and b.got == [{"t": "time", "now": 5}]
        committed.set_result(True)
        await links.drained(1.0)
        assert [m["t"] for m in a.got] == ["ack", "near"]
        # Nothing waits now: a message goes at once.
        await links.send("dock-a", ClockSync(6))
        assert a.got[-1] == {"t": "time", "now": 6}
        sender.cancel()
    run(main())


def test_a_refused_gate_sends_nothing_and_the_queue_goes_on() -> None:
    async def main() -> None:
        links = DeviceLinks(Metrics())
        a = Link(blocks=True)
        links.heard("dock-a", a.reply)

        not_stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        not_stored.set_result(False)
        sender = asyncio.create_task(links.run())
        links.post("dock-a", Ack("e1", 1), gate=not_stored)
        links.post("dock-a", Ack("e1", 2))
        await links.drained(1.0)
        await asyncio.sleep(0)  # a blocking link's write runs in its own task
        assert [m["seq"] for m in a.got] == [2]
        assert links.waiting() == 0
        sender.cancel()
    run(main())


def test_a_device_never_heard_has_no_route_and_answers_go_through_the_door() -> None:
    async def main() -> None:
        links = DeviceLinks(Metrics())
        with pytest.raises(Rejected, match="has not been heard"):
            await links.send("kiosk-x", FundsAnswer(1, False, "busy"))
        k = Link(blocks=False)
        links.heard("kiosk-x", k.reply)
        await links.send("kiosk-x", FundsAnswer(1, False, "busy"))
        assert k.got == [{"t": "funds", "id": 1, "ok": False, "err": "busy"}]
    run(main())


def test_the_firmware_publishes_on_the_topics_the_edge_reads() -> None:
    """wire/names.py holds the topics for the edge, its broker's ACL and the bridge;
    the firmware writes its own literals (a global costs a device heap). They agree:
    each message type on the leaf the edge expects it on, and nothing else."""
    import ast
    from pathlib import Path

    from wire import names

    src = Path(__file__).resolve().parents[3] / "firmware" / "lib" / "uplink" / "mqtt.py"
    tree = ast.parse(src.read_text(encoding="utf-8"))
    routes = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                  and getattr(n.targets[0], "id", "") == "_ROUTES")
    firmware = {ast.literal_eval(k): ast.literal_eval(v)[0]
                for k, v in zip(routes.keys, routes.values, strict=True)}  # type: ignore[attr-defined]
    assert {leaf: t for t, leaf in firmware.items()} == names.UP_LEAVES
    assert names.topic("anji", "dock-001", names.DOWN_LEAF) == "huimin/anji/dock-001/down"
    assert '"down"' in src.read_text(encoding="utf-8")
