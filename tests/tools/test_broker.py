"""The broker a county runs (tools/broker.py's files) under a real Mosquitto:
anonymous and wrong passwords refused, a device confined to its own topics,
the edge to what it uses, TLS for devices verified against the county CA."""

from __future__ import annotations

import asyncio
import queue
import ssl
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from tests.conftest import needs_mosquitto, run
from tools.broker import Broker, password_hash
from tools.ca import county_tls, make_ca

pytestmark = needs_mosquitto


class Client:
    """A paho client on its own thread; what it receives lands in a queue."""

    def __init__(self, port: int, user: str | None = None, password: str | None = None,
                 client_id: str = "", tls_ca: Path | None = None) -> None:
        self.got: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connected: queue.Queue[Any] = queue.Queue()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        if user is not None:
            c.username_pw_set(user, password)
        if tls_ca is not None:
            c.tls_set(ca_certs=str(tls_ca))
        c.on_connect = lambda cl, ud, flags, rc, props: self.connected.put(rc)
        c.on_message = lambda cl, ud, m: self.got.put((m.topic, m.payload))
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.c = c

    def result(self) -> Any:
        return self.connected.get(timeout=10)

    def sub(self, topic: str) -> None:
        r, _mid = self.c.subscribe(topic, qos=1)
        assert r == paho.MQTT_ERR_SUCCESS

    def pub(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _drain(q: queue.Queue[tuple[str, bytes]], wait: float = 0.5) -> list[tuple[str, bytes]]:
    out = []
    try:
        while True:
            out.append(q.get(timeout=wait))
    except queue.Empty:
        return out


def test_password_hash_is_mosquittos_format_and_salted() -> None:
    a, b = password_hash("x"), password_hash("x")
    assert a.startswith("$7$101$") and a != b and "x" not in a.split("$")[3:]


def test_anonymous_and_wrong_password_refused_devices_confined(tmp_path: Path) -> None:
    async def main() -> None:
        broker = Broker(tmp_path / "broker", site="anji")
        edge_pw = broker.account("huimin-edge", "edge")
        a_pw = broker.account("dock-a")
        b_pw = broker.account("dock-b")
        await broker.start()
        try:
            await asyncio.to_thread(check, broker.port, edge_pw, a_pw, b_pw)
            conf = (tmp_path / "broker" / "mosquitto.conf").read_text()
            assert "allow_anonymous false" in conf
            assert f"listener {broker.port} 127.0.0.1" in conf  # plain: loopback only
            assert (tmp_path / "broker" / "passwd").stat().st_mode & 0o077 == 0
            assert a_pw not in (tmp_path / "broker" / "passwd").read_text()
        finally:
            await broker.stop()

    def check(port: int, edge_pw: str, a_pw: str, b_pw: str) -> None:
        anon = Client(port)
        assert anon.result() != 0, "anonymous client accepted"
        anon.close()
        wrong = Client(port, "dock-a", b_pw)
        assert wrong.result() != 0, "dock-a accepted with dock-b's password"
        wrong.close()

        edge = Client(port, "huimin-edge", edge_pw, "edge")
        a = Client(port, "dock-a", a_pw, "dock-a")
        b = Client(port, "dock-b", b_pw, "dock-b")
        for c in (edge, a, b):
            assert c.result() == 0
        edge.sub("huimin/anji/+/event")
        a.sub("huimin/anji/dock-b/down")  # A tries to read B's commands
        a.sub("huimin/anji/#")  # ... and everything
        b.sub("huimin/anji/dock-b/down")
        _drain(edge.got, 0.3)

        a.pub("huimin/anji/dock-a/event", b"from a")  # its own: allowed
        a.pub("huimin/anji/dock-b/event", b"a as b")  # as B: dropped by the ACL
        a.pub("huimin/anji/dock-b/down", b"a commands b")  # not the edge: dropped
        edge.pub("huimin/anji/dock-b/down", b"edge commands b")
        got_edge = _drain(edge.got)
        assert got_edge == [("huimin/anji/dock-a/event", b"from a")], got_edge
        assert _drain(b.got) == [("huimin/anji/dock-b/down", b"edge commands b")]
        got_a = _drain(a.got, 0.2)
        assert all(t.startswith("huimin/anji/dock-a/") for t, _ in got_a), got_a
        for c in (edge, a, b):
            c.close()

    run(main())


def test_devices_reach_the_broker_only_over_tls_with_the_county_ca(tmp_path: Path) -> None:
    async def main() -> None:
        tls = county_tls(tmp_path / "ca", ["127.0.0.1"])
        broker = Broker(tmp_path / "broker", tls=tls)
        pw = broker.account("dock-a")
        await broker.start()
        try:
            assert broker.tls_port is not None
            await asyncio.to_thread(check, broker.tls_port, pw, tls.ca)
        finally:
            await broker.stop()

    def check(port: int, pw: str, ca: Path) -> None:
        ok = Client(port, "dock-a", pw, "dock-a", tls_ca=ca)
        assert ok.result() == 0
        ok.close()
        make_ca(tmp_path / "other")  # a stranger's CA: the broker is not trusted
        with pytest.raises(ssl.SSLError):
            Client(port, "dock-a", pw, "dock-a2", tls_ca=tmp_path / "other" / "ca.pem")

    run(main())


def test_free_ports_come_from_below_the_ephemeral_range() -> None:
    """A listener's port must not be one the kernel may hand an outgoing
    connection meanwhile (a NATS node once lost its monitor port so)."""
    import socket

    from tools.broker import _ephemeral_low, free_port

    low = _ephemeral_low()
    for _ in range(50):
        port = free_port()
        assert 1024 <= port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # and it is free


def test_free_port_never_hands_out_a_port_twice_before_it_is_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen in CI: a broker's plain and TLS listeners got the same port (both picks
    free, neither bound yet) and Mosquitto exited. The picks are forced to collide."""
    import random

    from tools import broker

    picks = iter([20001, 20001, 20001, 20002])
    monkeypatch.setattr(random, "randrange", lambda lo, hi: next(picks))
    monkeypatch.setattr(broker, "_ephemeral_low", lambda: 32768)
    monkeypatch.setattr(broker, "_handed_out", broker.deque(maxlen=1000))
    assert [broker.free_port(), broker.free_port()] == [20001, 20002]


def test_no_account_takes_over_another_clients_session(tmp_path: Path) -> None:
    """A dock's account connecting under another dock's client id, or under the edge's,
    does not close that client nor fire its will: a client's id is its username."""
    async def main() -> None:
        tls = county_tls(tmp_path / "ca", ["127.0.0.1"])
        broker = Broker(tmp_path / "broker", site="anji", tls=tls)
        edge_pw = broker.account("huimin-edge", "edge")
        a_pw = broker.account("dock-a")
        b_pw = broker.account("dock-b")
        await broker.start()
        try:
            assert broker.tls_port is not None
            await asyncio.to_thread(check, broker.port, broker.tls_port, tls.ca, edge_pw,
                                    a_pw, b_pw)
        finally:
            await broker.stop()

    def check(port: int, tls_port: int, ca: Path, edge_pw: str, a_pw: str, b_pw: str) -> None:
        watcher = Client(port, "huimin-edge", edge_pw, "huimin-edge-anji")
        assert watcher.result() == 0
        watcher.sub("huimin/anji/+/status")
        victim = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="dock-b")
        victim.username_pw_set("dock-b", b_pw)
        victim.tls_set(ca_certs=str(ca))
        victim.will_set("huimin/anji/dock-b/status", b"offline", qos=1)
        gone: queue.Queue[Any] = queue.Queue()
        victim.on_disconnect = lambda *a: gone.put(a)
        victim.connect("127.0.0.1", tls_port)
        victim.loop_start()
        try:
            _drain(watcher.got, 0.5)
            # dock-a's account, asking for dock-b's id, then for the edge's, twice each.
            for target in ["dock-b", "huimin-edge-anji", "huimin-edge"] * 2:
                thief = Client(tls_port, "dock-a", a_pw, target, tls_ca=ca)
                assert thief.result() == 0  # it connects, as dock-a
                thief.close()
            assert gone.empty(), "dock-b was closed by another account"
            assert watcher.got.empty(), f"a will fired: {_drain(watcher.got)}"
            assert watcher.connected.empty()  # the edge's session was never taken over
        finally:
            victim.loop_stop()
            victim.disconnect()
            watcher.close()

    run(main())


def test_the_edges_account_works_only_on_loopback(tmp_path: Path) -> None:
    """A copied edge.toml's broker password opens nothing on the devices' listener."""
    async def main() -> None:
        tls = county_tls(tmp_path / "ca", ["127.0.0.1"])
        broker = Broker(tmp_path / "broker", site="anji", tls=tls)
        edge_pw = broker.account("huimin-edge", "edge")
        a_pw = broker.account("dock-a")
        await broker.start()
        try:
            assert broker.tls_port is not None
            await asyncio.to_thread(check, broker.port, broker.tls_port, tls.ca, edge_pw, a_pw)
        finally:
            await broker.stop()

    def check(port: int, tls_port: int, ca: Path, edge_pw: str, a_pw: str) -> None:
        over_tls = Client(tls_port, "huimin-edge", edge_pw, "huimin-edge", tls_ca=ca)
        assert over_tls.result() != 0, "the edge's account accepted beyond loopback"
        over_tls.close()
        for c in (Client(port, "huimin-edge", edge_pw, "e"),
                  Client(tls_port, "dock-a", a_pw, "dock-a", tls_ca=ca)):
            assert c.result() == 0
            c.close()

    run(main())


def test_an_absent_clients_queue_is_bounded(tmp_path: Path) -> None:
    """The edge's persistent session while the edge is away: the broker holds
    what comes for it up to its bound (here 50 messages; a county's is in
    tools/broker.py), drops the rest, and delivers what it held when the edge
    is back. (Docks send again what was dropped: their journals keep every
    event until it is acked; tests/faults covers that end to end.)"""
    async def main() -> None:
        broker = Broker(tmp_path / "broker", site="anji", queue=(50, 1 << 20))
        edge_pw = broker.account("huimin-edge", "edge")
        a_pw = broker.account("dock-a")
        await broker.start()
        try:
            await asyncio.to_thread(check, broker.port, edge_pw, a_pw)
        finally:
            await broker.stop()

    def edge(port: int, pw: str) -> tuple[paho.Client, queue.Queue[Any]]:
        got: queue.Queue[Any] = queue.Queue()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="huimin-edge",
                        clean_session=False)
        c.username_pw_set("huimin-edge", pw)
        c.on_message = lambda cl, ud, m: got.put(m.payload)
        c.connect("127.0.0.1", port)
        c.loop_start()
        return c, got

    def check(port: int, edge_pw: str, a_pw: str) -> None:
        c, _ = edge(port, edge_pw)
        r, _mid = c.subscribe("huimin/anji/+/event", qos=1)
        assert r == paho.MQTT_ERR_SUCCESS
        _drain(queue.Queue(), 0.5)  # the subscription settles
        c.loop_stop()
        c.disconnect()  # away: its session stays, with its subscription
        dock = Client(port, "dock-a", a_pw, "dock-a")
        assert dock.result() == 0
        for i in range(120):
            dock.pub("huimin/anji/dock-a/event", b"%d" % i)
        dock.close()
        c, got = edge(port, edge_pw)
        held = _drain(got, 1.0)
        c.loop_stop()
        c.disconnect()
        assert 0 < len(held) <= 50 + 1, len(held)  # bounded, and what it held arrives
        assert held == [b"%d" % i for i in range(len(held))]  # the oldest, in order

    run(main())
