"""Over-the-air update speed: one signed image to a dock on a serial line and
to a dock on MQTT, with the dock firmware under MicroPython (64K heap).

For each link: the rollout's wall time and the median round trip of one OTA
command (a 512-byte chunk out, the dock's result back) as the edge sees it.
Baseline, measured in the same run on the same broker: the median round trip
of a QoS 1 request and its QoS 1 answer between two plain aiomqtt clients
(the broker's own request/response time for a message of a chunk's size).
Prints the MQTT command's ratio to that baseline. Usage:
    .venv/bin/python bench/ota.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.result import emit, row, scratch
from edge.core.messages import Result
from edge.netutil import NODELAY
from hardware.sim.town import Town
from tools.firmware import build, keygen, sign
from tools.ota import push


async def broker_round_trip(town: Town, rounds: int) -> float:
    """Median ms of request -> answer through the broker, both QoS 1, on the
    same paths as a command: the edge's account on loopback asks, a device's
    account over TLS answers (its results are dropped by the edge as a stranger's)."""
    broker = town.broker
    assert broker is not None and broker.tls is not None
    payload = b"x" * 700  # a 512-byte chunk in base64 plus the message around it
    got: asyncio.Queue[bytes] = asyncio.Queue()
    echo_pw = broker.account("bench-echo")
    # The asker speaks as an edge would, from an edge account of its own: a client's id
    # is its username, so the edge's own account would take the edge's session over.
    asker_pw = broker.account("bench-asker", "edge")
    await broker.reload()
    # The echo's answers reach the edge too, which drops them as a stranger's:
    # quiet that for the measurement.
    logging.getLogger("edge.mqtt").setLevel(logging.ERROR)
    base = "huimin/anji/bench-echo/"

    async def echo(ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", broker.tls_port, identifier="bench-echo",
                                  username="bench-echo", password=echo_pw,
                                  tls_params=aiomqtt.TLSParameters(ca_certs=str(broker.tls.ca)),
                                  socket_options=NODELAY) as c:
            await c.subscribe(base + "down", qos=1)
            ready.set()
            async for m in c.messages:
                await c.publish(base + "result", m.payload, qos=1)

    ready = asyncio.Event()
    task = asyncio.create_task(echo(ready))
    await ready.wait()
    times = []
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="bench-asker",
                              username="bench-asker", password=asker_pw,
                              socket_options=NODELAY) as c:
        await c.subscribe(base + "result", qos=1)

        async def listen() -> None:
            async for m in c.messages:
                got.put_nowait(bytes(m.payload))

        lt = asyncio.create_task(listen())
        for _ in range(rounds):
            t0 = time.perf_counter()
            await c.publish(base + "down", payload, qos=1)
            await got.get()
            times.append((time.perf_counter() - t0) * 1000)
        lt.cancel()
    task.cancel()
    return statistics.median(times)


async def rollout(work: Path, link: str, image: Path, pub: str,
                  rounds: int) -> dict[str, Any]:
    async with Town(work / link, docks=1, slots=4, mqtt_share=1.0 if link == "mqtt" else 0,
                    seed=3, ota_key=pub, ota_confirm_s=60) as town:
        await town.wait_online()
        svc = town.edge
        assert svc is not None
        plain = svc.links.command
        times: list[float] = []

        async def timed(dev: str, op: str, wait_s: float = 5.0, **a: Any) -> Result:
            t0 = time.perf_counter()
            r = await plain(dev, op, wait_s, **a)
            if op == "ota" and a.get("data"):
                times.append((time.perf_counter() - t0) * 1000)
            return r

        svc.links.command = timed  # type: ignore[method-assign]
        t0 = time.perf_counter()
        r = await asyncio.to_thread(push, f"http://127.0.0.1:{town.http_port}", image,
                                    [town.docks[0].dev], 1, 120.0, 0.1, io.StringIO(),
                                    town.token)
        wall = time.perf_counter() - t0
        base = await broker_round_trip(town, rounds) if town.broker else float("nan")
        return {"state": r["state"], "wall_s": wall, "chunks": len(times),
                "cmd_ms": statistics.median(times), "baseline_ms": base}


async def main(args: argparse.Namespace) -> None:
    work = scratch("huimin-bench-ota-")
    pub = keygen(work / "key.pem")
    image = build("unix", work / "image", "9.9.9")
    sign(image, work / "key.pem")
    size = sum(p.stat().st_size for p in image.rglob("*") if p.is_file())
    print(f"image: {size / 1024:.0f} KB")
    rows = []
    for link in ("serial", "mqtt"):
        r = await rollout(work, link, image, pub, args.rounds)
        line = (f"{link:6}  {r['state']:5}  rollout {r['wall_s']:5.1f} s  "
                f"{r['chunks']} chunks, command round trip median {r['cmd_ms']:.1f} ms")
        if link == "mqtt":
            line += (f"  | broker request/answer baseline {r['baseline_ms']:.1f} ms, "
                     f"ratio {r['cmd_ms'] / r['baseline_ms']:.1f}x")
        print(line)
        rows.append(row(f"OTA rollout on {link} ({r['state']})", r["wall_s"], "s"))
        rows.append(row(f"OTA command round trip, {link}", r["cmd_ms"], "ms",
                        r["baseline_ms"] if link == "mqtt" else None))
    emit("ota", rows)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=200, help="baseline exchanges (default 200)")
    asyncio.run(main(p.parse_args()))
