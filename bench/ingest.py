"""The edge's durable ingest rate against the broker's own delivery rate.

A backlog of N dock events (QoS 1, 1,000 docks) waits at the broker in two
persistent sessions: the edge's and a plain `mosquitto_sub`'s. Each consumer
is then started alone and timed until it has the whole backlog:
  - baseline: `mosquitto_sub -C N` (C, prints and forgets),
  - edge: every event decoded, checked, written to the SQLite journal
    (committed, so durable) and acknowledged to its dock.
The publisher's speed is out of both measurements. Prints both rates and the
ratio (DESIGN.md's target: at least 0.35x). Usage:
    .venv/bin/python bench/ingest.py [--events 50000] [--docks 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.config import parse
from edge.service import EdgeService
from tools.broker import Broker, free_port

SITE = "b"


def _edge(work: Path, broker: Broker, docks: int) -> EdgeService:
    raw = {"edge": {"site": SITE, "http_port": free_port(), "db": str(work / "edge.db"),
                    "heartbeat_timeout_s": 3600},
           "mqtt": {"url": broker.url},
           "stations": [{"id": f"s{i:04d}", "name_zh": f"站{i}", "lat": 30.6 + i * 1e-4,
                         "lon": 119.6, "devices": [f"d{i:04d}"]} for i in range(docks)]}
    return EdgeService(parse(raw))


async def _run_edge(svc: EdgeService, until_stored: int) -> tuple[float, float]:
    """Start the edge; returns (seconds from its MQTT connect to `until_stored`
    events stored, seconds it took to start)."""
    stop = asyncio.Event()
    t_start = time.perf_counter()
    task = asyncio.create_task(svc.run(stop), name="edge")
    await svc.ready.wait()
    await svc.transports[0].connected.wait()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    # Polling a counter: timing resolution 5 ms on runs of seconds.
    while svc.metrics.get("events.stored") < until_stored:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    took = time.perf_counter() - t0
    stop.set()
    await task
    return took, t0 - t_start


def _publish(port: int, msgs: list[tuple[str, bytes]]) -> None:
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-docks")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos = []
    for i, (topic, body) in enumerate(msgs):
        infos.append(pub.publish(topic, body, qos=1))
        if i % 1000 == 999:  # paho stalls past 65,535 outstanding ids (docs: mqtt.md)
            infos[-1].wait_for_publish(30)
    for info in infos:
        info.wait_for_publish(30)
    pub.disconnect()
    pub.loop_stop()


async def main(args: argparse.Namespace) -> None:
    sub = shutil.which("mosquitto_sub")
    if sub is None:
        raise SystemExit("mosquitto_sub not found (./run-tests installs mosquitto-clients)")
    work = Path(tempfile.mkdtemp(prefix="huimin-bench-ingest-"))
    broker = Broker(work / "broker")
    await broker.start()
    n, docks = args.events, args.docks
    base_cmd = [sub, "-h", "127.0.0.1", "-p", str(broker.port), "-c", "-i", "bench-base",
                "-q", "1", "-t", f"huimin/{SITE}/+/event"]
    # 1. Both sessions exist; the docks say hello (so the edge knows them), then
    #    both consumers go away.
    await asyncio.to_thread(subprocess.run, [*base_cmd, "-W", "1"], capture_output=True)
    hellos = [(f"huimin/{SITE}/d{i:04d}/hello", json.dumps(
        {"t": "hello", "dev": f"d{i:04d}", "kind": "dock", "fw": "bench", "slots": 12,
         "boot": 1, "epoch": "e"}).encode()) for i in range(docks)]
    await asyncio.to_thread(_publish, broker.port, hellos)
    await _run_edge(_edge(work, broker, docks), 0)
    # 2. The backlog: N events, each dock in order.
    events = []
    for k in range(n):
        i, seq = k % docks, k // docks + 1
        events.append((f"huimin/{SITE}/d{i:04d}/event", json.dumps(
            {"t": "ev", "dev": f"d{i:04d}", "epoch": "e", "seq": seq,
             "ev": "rented" if seq % 2 else "returned", "slot": seq % 12,
             "bike": f"0B{i:04X}{seq:04X}"}, separators=(",", ":")).encode()))
    t0 = time.perf_counter()
    await asyncio.to_thread(_publish, broker.port, events)
    print(f"backlog: {n} events from {docks} docks queued in {time.perf_counter() - t0:.1f} s")
    # 3. Baseline: mosquitto_sub drains its backlog.
    t0 = time.perf_counter()
    # Nothing else runs meanwhile: a blocking wait keeps the timing clean.
    r = subprocess.run([*base_cmd, "-C", str(n), "-W", "120"],  # noqa: ASYNC221
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base_s = time.perf_counter() - t0
    if r.returncode != 0:
        print(f"WARNING: mosquitto_sub ended with {r.returncode}: {r.stderr.decode()[:200]}")
    # 4. The edge drains its backlog into the journal.
    svc = _edge(work, broker, docks)
    edge_s, start_s = await _run_edge(svc, n)
    stored = svc.metrics.get("events.stored")
    await broker.stop()
    base_rate, edge_rate = n / base_s, n / edge_s
    print(f"baseline  mosquitto_sub          {base_rate:9.0f} msg/s  ({base_s:.2f} s, includes "
          "its start)")
    print(f"edge      decoded, journaled, acked {edge_rate:9.0f} msg/s  ({edge_s:.2f} s from "
          f"its MQTT connect; it started in {start_s:.2f} s; {stored} stored)")
    ratio = edge_rate / base_rate
    print(f"ratio {ratio:.2f}x of the broker's delivery rate (target >= 0.35x: "
          f"{'met' if ratio >= 0.35 else 'NOT met'})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--docks", type=int, default=1000)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(ap.parse_args()))
