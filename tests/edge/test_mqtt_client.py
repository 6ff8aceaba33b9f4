"""The edge's own MQTT client (edge/adapters/transports/mqtt_client.py)
against a real Mosquitto on the county's setup (accounts, ACL): a wrong
password gets one line that says so; a persistent session's backlog comes in
batches, many messages a read; what was acknowledged is gone, what was not
comes again on the next session (so a message let go of only after its
commit survives the edge dying mid-batch); QoS 1 sends are PUBACKed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from edge.adapters.transports.mqtt_client import MqttConnection, MqttError
from edge.adapters.transports.mqtt_codec import Publish
from tests.conftest import broker_for_dock_a, needs_mosquitto, run, until
from tools.broker import IN_FLIGHT, Broker

pytestmark = needs_mosquitto


def _dock_publishes(port: int, password: str, n: int) -> None:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="dock-a")
    c.username_pw_set("dock-a", password)
    c.max_inflight_messages_set(n)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish("huimin/t/dock-a/event", f"m{i}".encode(), qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def test_a_wrong_password_is_one_line_that_says_so(tmp_path: Path) -> None:
    async def main() -> None:
        broker = Broker(tmp_path / "broker", site="t")
        broker.account("huimin-edge", "edge")
        await broker.start()

        async def nothing(conn: MqttConnection, batch: list[Publish]) -> None:
            pass
        try:
            with pytest.raises(MqttError, match=r"refused the connection: (wrong user name|not"
                                                r" authorised)"):
                await MqttConnection.open("127.0.0.1", broker.port, client_id="huimin-edge",
                                          keepalive=30, on_batch=nothing,
                                          username="huimin-edge", password="guess")
            with pytest.raises(MqttError, match="cannot reach"):
                await MqttConnection.open("127.0.0.1", 1, client_id="x", keepalive=30,
                                          on_batch=nothing)
        finally:
            await broker.stop()
    run(main())


def test_the_backlog_comes_in_batches_and_what_was_not_acked_comes_again(
        tmp_path: Path) -> None:
    async def main() -> None:
        broker, edge_pw, dock_pw = await broker_for_dock_a(tmp_path)
        batches: list[list[Publish]] = []

        async def take(conn: MqttConnection, batch: list[Publish]) -> None:
            batches.append(batch)

        async def session() -> MqttConnection:
            return await MqttConnection.open(
                "127.0.0.1", broker.port, client_id="huimin-edge", keepalive=30,
                on_batch=take, clean_session=False, username="huimin-edge",
                password=edge_pw, will=("huimin/t/_edge/status", b'{"online":false}', 1, True))
        try:
            conn = await session()
            await conn.subscribe([("huimin/t/+/event", 1)])
            assert not conn.session_present
            await conn.close()
            # More events than the broker's window queue for the edge's session while
            # it is away.
            total = IN_FLIGHT + 200
            await asyncio.to_thread(_dock_publishes, broker.port, dock_pw, total)
            conn = await session()
            assert conn.session_present
            await until(lambda: sum(map(len, batches)) >= IN_FLIGHT, 10, "the broker's window")
            await asyncio.sleep(0.5)
            got = [p for b in batches for p in b]
            assert max(map(len, batches)) > 1  # many messages a read, not one each
            assert [p.payload for p in got] == [f"m{i}".encode() for i in range(len(got))]
            # None acknowledged: the broker stops at its window (max_inflight_messages).
            assert len(got) == IN_FLIGHT == len(conn.unsettled)
            for p in got[:60]:
                conn.ack(p.pid)  # "committed"
            conn.ack(got[0].pid)  # twice: nothing more is sent for it
            await until(lambda: sum(map(len, batches)) >= IN_FLIGHT + 60, 10,
                        "more, once some are acked")
            # The edge dies with the rest received and not acknowledged.
            await conn.close()
            batches.clear()
            conn = await session()
            await until(lambda: sum(map(len, batches)) >= total - 60, 10, "the rest")
            for p in (p for b in batches for p in b):
                conn.ack(p.pid)
            again = [p.payload for b in batches for p in b]
            # The 60 acked never again; the others again (the first marked DUP), in order.
            assert again == [f"m{i}".encode() for i in range(60, total)], again[:5]
            assert batches[0][0].dup
            # Our own QoS 1 send: PUBACKed by the broker.
            await conn.wait_published(conn.publish("huimin/t/_edge/status", b'{"online":true}',
                                                   1, retain=True))
            await conn.close()
        finally:
            await broker.stop()
    run(main())


def test_an_edge_busy_with_a_batch_is_not_taken_for_a_dead_broker(tmp_path: Path) -> None:
    """While the edge holds a batch (its queue full), the reader reads nothing:
    that is not the broker's silence. The pings still go, and the connection
    lives through a wait of twice the keepalive."""
    async def main() -> None:
        broker, edge_pw, dock_pw = await broker_for_dock_a(tmp_path)
        held = asyncio.Event()

        async def slow(conn: MqttConnection, batch: list[Publish]) -> None:
            held.set()
            await asyncio.sleep(4.0)  # keepalive 2 s: 1.5x is 3 s
            for p in batch:
                conn.ack(p.pid)
        try:
            conn = await MqttConnection.open(
                "127.0.0.1", broker.port, client_id="huimin-edge", keepalive=2, on_batch=slow,
                clean_session=False, username="huimin-edge", password=edge_pw)
            await conn.subscribe([("huimin/t/+/event", 1)])
            await asyncio.to_thread(_dock_publishes, broker.port, dock_pw, 3)
            await until(held.is_set, 10, "a batch")
            await asyncio.sleep(4.5)
            assert not conn.ended
            await conn.close()
        finally:
            await broker.stop()
    run(main())
