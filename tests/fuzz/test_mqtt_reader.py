"""The device's MQTT client (firmware/lib/mqtt/client.py) under a dishonest broker: the
real client under MicroPython, at an MQTT dock's heap, against a server that answers its
CONNECT properly and then sends whatever it likes (random bytes, PUBLISH packets with
wrong lengths, topics that are not UTF-8, an endless remaining-length, acks too short to
hold an id). Each connection ends with the client's error handling, never an uncaught
exception; the heap does not grow across the rounds; and an honest PUBLISH afterwards
still arrives and is acked. (Mosquitto is honest, so this one broker is a test's own, and it
speaks MQTT 3.1.1's real framing.)"""

from __future__ import annotations

import os
import random
import socket
import struct
import subprocess
import threading
from pathlib import Path

from hardware.sim.spec import MQTT_HEAP
from tools.broker import free_port
from tools.firmware import build, micropython_path

ROUNDS = int(os.environ.get("HUIMIN_FUZZ_MQTT_ROUNDS", "120"))

DEVICE = """
import sys, gc, asyncio
sys.path[:0] = [%(lib)r]
from mqtt.client import MQTTClient
got = [0, 0]
def on_message(topic, msg):
    got[0] += 1
    if msg == b"honest":
        got[1] += 1
async def main():
    c = MQTTClient("dock-a", "127.0.0.1", %(port)d, user="dock-a", password="pw",
                   keepalive=30, timeout_ms=3000, on_message=on_message)
    free = [0] * (%(rounds)d + 1)  # made before: a growing list would read as a leak
    for i in range(%(rounds)d + 1):
        try:
            await c.connect()
        except Exception as e:
            pass
        else:
            await c.dead.wait()
        for t in c._tasks:
            t.cancel()
        await asyncio.sleep_ms(0)
        gc.collect()
        free[i] = gc.mem_free()
    # The best level early on against the best at the end: what was freed each round
    # (an exception, a buffer) comes and goes, a leak lowers the level for good.
    print("rounds", len(free), "honest", got[1], "free", max(free[5:25]), max(free[-20:]))
asyncio.run(main())
"""


def _varlen(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _publish(topic: bytes, payload: bytes, qos: int = 1, pid: int = 7,
             length: int | None = None) -> bytes:
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", pid) if qos else b"") \
        + payload
    return bytes((0x30 | qos << 1,)) + _varlen(len(body) if length is None else length) + body


def _junk(rng: random.Random) -> bytes:
    k = rng.randrange(9)
    if k == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    if k == 1:  # a remaining length that never ends
        return b"\x30" + b"\xff" * rng.randrange(5, 400)
    if k == 2:  # a topic that is not UTF-8
        return _publish(b"huimin/anji/dock-a/\xff\xfe", b"x")
    if k == 3:  # a topic length past the packet's end
        return _publish(b"t", b"payload", length=rng.randrange(0, 4)) + b"\x00" * 4
    if k == 4:  # QoS 1 with no room for the id, QoS 3
        return bytes((0x32, 2, 0, 1)) + bytes((0x36, 3, 0, 0, 0x41))
    if k == 5:  # acks too short to hold an id
        return bytes((0x40, 0)) + bytes((0x90, 1, 0))
    if k == 6:  # oversize publish, then garbage inside its length
        return _publish(b"a/b", bytes(rng.randrange(256) for _ in range(2000)))
    if k == 7:  # a length that claims more than is ever sent
        return bytes((0x30,)) + _varlen(1400) + b"\x00\x01t" + b"y" * 50
    return _publish(bytes(rng.randrange(32, 127) for _ in range(rng.randrange(0, 40))),
                    bytes(rng.randrange(256) for _ in range(rng.randrange(0, 900))),
                    qos=rng.randrange(2), pid=rng.randrange(65536))


def _read_packet(conn: socket.socket) -> bytes:
    head = conn.recv(1)
    n, shift = 0, 0
    while True:
        b = conn.recv(1)
        if not b:
            return b""
        n |= (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            break
    body = b""
    while len(body) < n:
        chunk = conn.recv(n - len(body))
        if not chunk:
            break
        body += chunk
    return head + body


def test_the_device_client_survives_a_dishonest_broker_without_growing(
        tmp_path: Path) -> None:
    image = build("unix")
    port = free_port()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(4)
    server.settimeout(60)
    pubacks: list[bytes] = []

    def broker() -> None:
        rng = random.Random(11)
        for i in range(ROUNDS + 1):
            conn, _ = server.accept()
            conn.settimeout(10)
            with conn:
                if not _read_packet(conn).startswith(b"\x10"):
                    continue
                conn.sendall(b"\x20\x02\x00\x00")
                if i < ROUNDS:
                    try:
                        conn.sendall(_junk(rng))
                    except OSError:
                        pass  # the client already hung up on it
                    continue
                conn.sendall(_publish(b"huimin/anji/dock-a/down", b"honest", pid=4242))
                pubacks.append(_read_packet(conn))

    t = threading.Thread(target=broker, daemon=True)
    t.start()
    script = DEVICE % {"lib": str(image / "lib"), "port": port, "rounds": ROUNDS}
    r = subprocess.run([micropython_path(), "-X", f"heapsize={MQTT_HEAP}", "-c", script],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    t.join(30)
    server.close()
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "MemoryError" not in r.stdout + r.stderr, \
        r.stdout[-2000:] + r.stderr[-2000:]
    fields = r.stdout.strip().splitlines()[-1].split()
    assert fields[:4] == ["rounds", str(ROUNDS + 1), "honest", "1"], r.stdout[-1000:]
    early, late = int(fields[5]), int(fields[6])
    assert late >= early - 256, f"heap grew: {early} free early, {late} at the end"
    assert pubacks == [bytes((0x40, 4242 >> 8, 4242 & 0xFF))]  # its PUBACK (length byte read)
