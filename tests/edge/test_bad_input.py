"""Bad input at the edge's doors (serial frames, MQTT payloads): each is
dropped with a clear reason counted in the metrics, the edge keeps running,
and a good event among the garbage is stored exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import serial
from wire import auth, message
from wire.framing import KIND_DATA, encode_frame
from wire.link import Link

from edge.adapters.device_keys import dump_devices, write_private
from edge.config import parse
from edge.runtime import Edge
from hardware.serial_line import SerialLine
from tests.conftest import needs_mosquitto, run, until
from tools.broker import Broker

KEY = "a5" * 32  # dock-a's command key, as provisioning makes one


def _cfg(tmp: Path, serial_port: str | None = None, mqtt: str | None = None,
         mqtt_password: str = "") -> dict[str, object]:
    write_private(tmp / "device-keys.toml", dump_devices({"dock-a": {"command_key": KEY}}))
    raw: dict[str, object] = {
        "edge": {"site": "t", "http_port": 0, "db": str(tmp / "edge.db")},
        "stations": [{"id": "s1", "name_zh": "一号站", "lat": 30.6, "lon": 119.6,
                      "devices": ["dock-a"]}]}
    if serial_port:
        raw["serial"] = [{"port": serial_port, "devices": ["dock-a"]}]
    if mqtt:
        raw["mqtt"] = {"url": mqtt, "username": "huimin-edge", "password": mqtt_password}
    return raw


def sealed(msg: dict[str, object], key: str = KEY) -> bytes:
    """As the device sends it: encoded, then sealed with its key (wire/auth.py)."""
    return bytes(auth.seal(auth.Key(bytes.fromhex(key)), auth.UP, message.encode(msg)))


EVENT = {"t": "ev", "dev": "dock-a", "epoch": "e1", "seq": 1, "ev": "returned", "slot": 0,
         "bike": "0A00000001"}


def test_serial_garbage_is_counted_and_good_event_stored_once(tmp_path: Path) -> None:
    async def main() -> None:
        line = SerialLine()
        dev_path, edge_path = line.open()
        svc = Edge(parse(_cfg(tmp_path, serial_port=edge_path)))
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        await svc.ready.wait()
        port = serial.Serial(dev_path, 115200, timeout=0)
        link = Link(rto_ms=100)
        acks: list[dict[str, object]] = []

        async def pump() -> None:
            while True:
                data = port.read(4096)
                if data:
                    link.receive(data)
                while (p := link.recv()) is not None:
                    # What the edge sends is sealed with the device's key.
                    assert auth.verify(auth.Key(bytes.fromhex(KEY)), auth.DOWN, p), p
                    acks.append(message.decode(p))
                while (out := link.poll(int(time.monotonic() * 1000))) is not None:
                    port.write(out)
                await asyncio.sleep(0.005)

        pumper = asyncio.create_task(pump())
        try:
            raw_junk = [
                b"\x00\x01garbage line noise\xff" * 3,  # noise between frames
                encode_frame(KIND_DATA, 1, b"x")[:-1] + b"\x00",  # bad CRC
                b"\xa5\x5a\x01\x07\xff\xff",  # length over the cap
                encode_frame(KIND_DATA, 1, b"abc")[:5],  # truncated, then silence
            ]
            for junk in raw_junk:
                port.write(junk)
                await asyncio.sleep(0.25)
            payloads = [
                b"{not json",
                b'{"t":"warp","dev":"dock-a"}',
                b'{"t":"ev","dev":"dock-a","epoch":"e","seq":"x","ev":"rented","slot":1}',
                json.dumps({**EVENT, "dev": "dock-zz"}).encode(),  # not wired to this port
                b'{"t":"cmd","id":1,"op":"reboot"}',  # no device id at all
            ]
            for p in payloads:
                link.send(p)
            link.send(message.encode({**EVENT, "seq": 5}))  # not sealed
            link.send(sealed({**EVENT, "seq": 6}, "b6" * 32))  # sealed with another key
            link.send(sealed(EVENT))
            link.send(sealed(EVENT))  # resent: a duplicate
            link.send(sealed({**EVENT, "seq": 0, "bike": "0A00000002"}))  # out of order
            await until(lambda: sum(1 for a in acks if a.get("t") == "ack") >= 3)
            m = svc.metrics
            await until(lambda: m.get("events.duplicate") == 1)
            assert m.get("events.stored") == 2
            rows = await svc.store.events()
            assert sorted((r["seq"], r["bike"]) for r in rows) == [
                (0, "0A00000002"), (1, "0A00000001")]
            assert m.get("serial.frame_dropped", "noise") > 0
            assert m.get("serial.frame_dropped", "crc") == 1
            assert m.get("serial.frame_dropped", "length") == 1
            assert m.get("serial.frame_dropped", "gap") == 1
            # (An oversize message cannot fit a frame: the "length" drop above covers it.)
            for reason in ("json", "unknown_type", "bad_field", "wrong_port", "no_device"):
                assert m.get("rx.rejected", reason) == 1, (reason, m.snapshot())
            assert m.get("rx.rejected", "bad_mac") == 2
            assert not task.done()
        finally:
            pumper.cancel()
            stop.set()
            await task
            port.close()
            line.close()
    run(main())


@needs_mosquitto
def test_mqtt_garbage_is_counted_and_good_event_stored_once(tmp_path: Path) -> None:
    async def main() -> None:
        broker = Broker(tmp_path / "broker", site="t")
        edge_pw = broker.account("huimin-edge", "edge")
        # dock-a's own account; dock-zz has one at the broker but not at the edge
        a_pw, zz_pw = broker.account("dock-a"), broker.account("dock-zz")
        await broker.start()
        svc = Edge(parse(_cfg(tmp_path, mqtt=broker.url, mqtt_password=edge_pw)))
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        assert svc.transports
        await svc.transports[0].connected.wait()
        pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="dock-a")
        pub.username_pw_set("dock-a", a_pw)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        zz = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="dock-zz")
        zz.username_pw_set("dock-zz", zz_pw)
        zz.connect("127.0.0.1", broker.port)
        zz.loop_start()
        try:
            junk = [("huimin/t/dock-a/event", b"{not json"),
                    ("huimin/t/dock-a/event", b'{"t":"state","dev":"dock-a","boot":1,"n":1,'
                     b'"slots":"LL"}'),  # right message, wrong topic
                    ("huimin/t/dock-a/event", b"\x00" * 3000),  # oversize
                    ("huimin/t/dock-a/event", sealed({**EVENT, "dev": "dock-b"})),
                    ("huimin/t/dock-a/event", message.encode({**EVENT, "seq": 5})),  # unsealed
                    ("huimin/t/dock-a/event", sealed({**EVENT, "seq": 6}, "b6" * 32))]
            for topic, payload in junk:
                pub.publish(topic, payload, qos=1).wait_for_publish(5)
            zz.publish("huimin/t/dock-zz/event", json.dumps({**EVENT, "dev": "dock-zz"}).encode(),
                       qos=1).wait_for_publish(5)
            for _ in range(2):
                pub.publish("huimin/t/dock-a/event", sealed(EVENT), qos=1).wait_for_publish(5)
            m = svc.metrics
            await until(lambda: m.get("events.duplicate") == 1)
            assert m.get("events.stored") == 1
            for reason in ("json", "wrong_topic", "oversize", "unregistered", "device_mismatch"):
                assert m.get("rx.rejected", reason) == 1, (reason, m.snapshot())
            assert m.get("rx.rejected", "bad_mac") == 2
            assert not task.done()
        finally:
            for c in (pub, zz):
                c.loop_stop()
                c.disconnect()
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await broker.stop()
    run(main())


def test_kiosk_funds_answer_is_trimmed_to_the_kiosks_buffer() -> None:
    from wire import message, names

    from edge.app.funds import funds_answer
    from edge.core.messages import to_wire

    def kiosk_funds_message(req_id: int, answer: dict[str, Any]) -> dict[str, Any]:
        return to_wire(funds_answer(req_id, answer))  # the one encoder of a message
    rec = {"programme": "城乡居民最低生活保障金补发", "amount_fen": 123456789,
           "paid": "2026-06-15", "status": "已发放（补发）"}
    msg = kiosk_funds_message(7, {"ok": True, "records": [rec] * 12, "as_of": 1, "stale": False})
    assert 0 < len(msg["records"]) < 12
    assert len(message.encode(msg)) <= names.KIOSK_MAX_MESSAGE
    assert msg["records"][0] == ["城乡居民最低生活保障金补发", 123456789, "2026-06-15", "已发放（补发）"]
    assert kiosk_funds_message(8, {"ok": False, "err": "unknown"}) == {
        "t": "funds", "id": 8, "ok": False, "err": "unknown"}
