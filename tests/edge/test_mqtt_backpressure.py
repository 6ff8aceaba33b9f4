"""The edge's MQTT intake has a bound, and a flood waits at the broker, not in
the edge's memory: each message is acknowledged to the broker only once the
edge is done with it (Inbound.done), so with the inbound queue full the
broker stops at its in-flight window (max_inflight_messages, tools.broker.IN_FLIGHT) and nothing
is lost or reordered when the edge catches up. A real Mosquitto, the real
transport.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import aiomqtt
from wire import auth

from edge.adapters.transports.mqtt import MqttTransport
from edge.config import MqttConfig
from edge.core.metrics import Metrics
from tests.conftest import needs_mosquitto, run, until
from tools.broker import IN_FLIGHT, Broker

RAW_KEY = secrets.token_bytes(32)
KEY = auth.Key(RAW_KEY)


class Keys:
    def seal(self, dev: str, msg: dict[str, Any]) -> bytes:
        return bytes(auth.seal(KEY, auth.DOWN, json.dumps(msg).encode()))

    def verify(self, dev: str, data: bytes) -> bool | None:
        return dev in ("dock-a", "dock-b") and auth.verify(KEY, auth.UP, data)

    def command_key(self, dev: str) -> bytes | None:
        return RAW_KEY if dev in ("dock-a", "dock-b") else None

    def to_seal(self, dev: str, msg: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        return RAW_KEY, msg


@needs_mosquitto
def test_a_flood_waits_at_the_broker_and_arrives_whole_and_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        broker = Broker(tmp_path / "broker", site="t")
        edge_pw = broker.account("huimin-edge", "edge")
        dock_pw = broker.account("dock-a")
        await broker.start()
        inbound: asyncio.Queue[Any] = asyncio.Queue(maxsize=5)
        n = IN_FLIGHT + 300  # more than the broker's window
        # The dock's budget holds the whole flood: what is tested is the window.
        t = MqttTransport(MqttConfig("127.0.0.1", broker.port, "huimin-edge", edge_pw,
                                     device_burst=2 * n), "t", inbound, Metrics(), Keys())
        task = asyncio.create_task(t.run())
        try:
            await until(t.connected.is_set, 10, "the edge's connection")
            async with aiomqtt.Client("127.0.0.1", broker.port, username="dock-a",
                                      password=dock_pw, identifier="dock-a",
                                      max_inflight_messages=n) as dock:
                for seq in range(1, n + 1):
                    msg = {"t": "ev", "dev": "dock-a", "epoch": "e", "seq": seq,
                           "ev": "rented", "slot": 1, "bike": "0B00000001"}
                    data = bytes(auth.seal(KEY, auth.UP, json.dumps(msg).encode()))
                    await dock.publish("huimin/t/dock-a/event", data, qos=1)
            # Nobody takes from the queue yet: it fills, then the edge holds at
            # most the broker's window unacked, and the rest waits at the broker.
            conn = t.conn
            assert conn is not None
            await until(lambda: inbound.full() and len(conn.unsettled) > 5, 10, "a full queue")
            await asyncio.sleep(1.0)
            assert len(conn.unsettled) <= IN_FLIGHT, len(conn.unsettled)  # the broker's window
            got = []
            async with asyncio.timeout(30):
                while len(got) < n:
                    item = await inbound.get()
                    got.append(item.msg.seq)
                    item.done()  # "committed": the broker may let it go, and send more
            assert got == list(range(1, n + 1))  # none lost, none twice, in order
            await until(lambda: not conn.unsettled, 5, "every message acknowledged")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await broker.stop()
    run(main())


@needs_mosquitto
def test_a_dock_beyond_its_budget_is_cut_off_and_costs_another_nothing(tmp_path: Path) -> None:
    """A faulty or hostile dock floods; the edge drops what exceeds its budget
    before decoding it (counted for that dock), and every message of a quiet
    dock sending at the same time arrives."""
    async def main() -> None:
        broker = Broker(tmp_path / "broker", site="t")
        edge_pw = broker.account("huimin-edge", "edge")
        pws = {d: broker.account(d) for d in ("dock-a", "dock-b")}
        await broker.start()
        inbound: asyncio.Queue[Any] = asyncio.Queue()
        metrics = Metrics()
        cfg = MqttConfig("127.0.0.1", broker.port, "huimin-edge", edge_pw,
                         device_rate_per_s=5.0, device_burst=20)
        t = MqttTransport(cfg, "t", inbound, metrics, Keys())
        task = asyncio.create_task(t.run())

        async def send(dev: str, n: int, pause: float) -> None:
            async with aiomqtt.Client("127.0.0.1", broker.port, username=dev,
                                      password=pws[dev], identifier=dev) as c:
                for seq in range(1, n + 1):
                    msg = {"t": "ev", "dev": dev, "epoch": "e", "seq": seq,
                           "ev": "returned", "slot": 1, "bike": "0B00000001"}
                    await c.publish(f"huimin/t/{dev}/event",
                                    bytes(auth.seal(KEY, auth.UP, json.dumps(msg).encode())),
                                    qos=1)
                    await asyncio.sleep(pause)
        try:
            await until(t.connected.is_set, 10, "the edge's connection")
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await asyncio.gather(send("dock-a", 1000, 0.0), send("dock-b", 10, 0.1))
            await until(lambda: metrics.get("rx.over_budget", "dock-a") > 0 and sum(
                1 for m in list(inbound._queue) if m.device == "dock-b") == 10, 10)  # type: ignore[attr-defined]
            elapsed = loop.time() - t0
            got = [m.device for m in list(inbound._queue)]  # type: ignore[attr-defined]
            assert got.count("dock-b") == 10  # the quiet dock: every one
            assert got.count("dock-a") <= 20 + 5 * elapsed + 1, (got.count("dock-a"), elapsed)
            assert got.count("dock-a") + metrics.get("rx.over_budget", "dock-a") <= 1000
            assert metrics.get("rx.over_budget", "dock-b") == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await broker.stop()
    run(main())
