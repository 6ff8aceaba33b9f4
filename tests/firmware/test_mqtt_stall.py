"""The device's MQTT client (firmware/lib/mqtt/client.py) under MicroPython
against a real Mosquitto that stops reading: SIGSTOP freezes the broker (a
silent partition, no FIN), the client's writes fill the TCP window, and the
write pending past the client's timeout ends the connection (check(), called
from the owner's loop, with no task per packet) instead of hanging until TCP
gives up."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.conftest import needs_mosquitto, run
from tools.broker import Broker
from tools.firmware import micropython_path

pytestmark = needs_mosquitto
LIB = Path(__file__).resolve().parents[2] / "firmware" / "lib"

SCRIPT = """
import sys
sys.path[:0] = [%(lib)r]
import asyncio, time
from mqtt.client import MQTTClient

async def main():
    c = MQTTClient("dock-x", "127.0.0.1", %(port)d, "dock-x", %(pw)r, 30, timeout_ms=1000)
    await c.connect()
    print("connected")
    await asyncio.sleep_ms(1500)  # the test freezes the broker now
    sent = [0]

    async def flood():
        payload = b"x" * 1400
        while True:
            await c.publish("huimin/anji/dock-x/", payload, False, 0, "state")
            sent[0] += 1

    t = asyncio.create_task(flood())
    t0 = time.ticks_ms()
    while not c.dead.is_set() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
        await asyncio.sleep_ms(50)
        c.check(time.ticks_ms())
    await asyncio.sleep_ms(200)
    print("dead" if c.dead.is_set() else "alive", repr(c.error), sent[0] > 0, t.done())

asyncio.run(main())
"""


def test_a_write_the_frozen_broker_never_takes_ends_the_connection(tmp_path: Path) -> None:
    async def main() -> None:
        broker = Broker(tmp_path / "broker")
        pw = broker.account("dock-x")
        await broker.start()
        assert broker.proc is not None
        script = tmp_path / "stall.py"
        script.write_text(SCRIPT % {"lib": str(LIB), "port": broker.port, "pw": pw})
        proc = await asyncio.create_subprocess_exec(
            micropython_path(), "-X", "heapsize=256K", str(script),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert proc.stdout is not None
        frozen = False
        try:
            first = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert first.strip() == b"connected", first
            os.kill(broker.proc.pid, signal.SIGSTOP)
            frozen = True
            out = (await asyncio.wait_for(proc.stdout.read(), 60)).decode()
        finally:
            if frozen:
                os.kill(broker.proc.pid, signal.SIGCONT)
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            await broker.stop()
        last = out.strip().splitlines()[-1]
        # Dead by the write deadline (not by keepalive), after writes went out,
        # and the write that was stuck woke with an error.
        assert last == "dead MQTTError('write stalled',) True True", out[-2000:]
    run(main())
