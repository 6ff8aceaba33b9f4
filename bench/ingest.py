"""The edge's durable ingest rate against the broker's own delivery rate.

A backlog of N dock events (QoS 1, 1,000 docks) waits at the broker in two
persistent sessions: the edge's and a plain `mosquitto_sub`'s. Each consumer
is then started alone and timed until it has the whole backlog:
  - baseline: `mosquitto_sub -C N` (C, prints and forgets),
  - edge: every event decoded, its MAC checked, written to the SQLite journal
    (committed, so durable) and acknowledged to its dock (the ack sealed).
Both run on the county's secure setup: accounts, ACL, the docks on TLS.
The publisher's speed is out of both measurements. Prints both rates and the
ratio (DESIGN.md's target: at least 0.35x). Usage:
    .venv/bin/python bench/ingest.py [--events 50000] [--docks 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fleet import Fleet, mosquitto_sub_env, secure_broker
from bench.result import emit, row, scratch
from edge.adapters.transports.mqtt import MqttTransport
from edge.config import parse
from edge.runtime import Edge, collect_garbage_less_often
from tools.broker import Broker, free_port

SITE = "b"


def _edge(work: Path, broker: Broker, docks: int, password: str, workers: int = 1) -> Edge:
    raw = {"edge": {"site": SITE, "http_port": free_port(), "db": str(work / "edge.db"),
                    "heartbeat_timeout_s": 3600},
           "mqtt": {"url": broker.url, "username": "huimin-edge", "password": password,
                    "worker_processes": workers},
           "stations": [{"id": f"s{i:04d}", "name_zh": f"站{i}", "lat": 30.6 + i * 1e-4,
                         "lon": 119.6, "devices": [f"d{i:04d}"]} for i in range(docks)]}
    return Edge(parse(raw))


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class Drain:
    """One drain of the edge: how long, and the CPU each part of it spent."""

    def __init__(self) -> None:
        self.seconds = self.start_s = 0.0
        self.cpu: dict[str, float] = {}


async def _run_edge(svc: Edge, until_stored: int, broker_pid: int | None = None) -> Drain:
    """Start the edge; the drain's seconds from its MQTT session's start (the
    CONNACK) to `until_stored` events stored, and the CPU seconds from then
    of the event loop's thread, the edge's other threads (the
    store's writer), its wire worker and the broker. The backlog flows from the
    CONNACK, before any subscribe."""
    stop = asyncio.Event()
    out = Drain()
    t_start = time.perf_counter()
    task = asyncio.create_task(svc.run(stop), name="edge")
    await svc.ready.wait()
    mqtt = svc.transports[0]
    assert isinstance(mqtt, MqttTransport)
    # CPU from the CONNACK (a turn of the loop after it): the backlog flows from
    # there, before the subscription (sampled after it, a fast drain was half done).
    while not mqtt.session_started:  # noqa: ASYNC110
        await asyncio.sleep(0)
    worker = mqtt.worker.pid if mqtt.worker is not None else None
    loop0, proc0 = time.thread_time(), time.process_time()
    worker0, broker0 = _cpu_s(worker), _cpu_s(broker_pid)
    # Subscribed: the session then holds whatever comes (the first run makes it).
    await mqtt.connected.wait()
    # Polling a counter: 5 ms resolution on runs of a second and more.
    while svc.metrics.get("events.stored") < until_stored:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    t_end = time.perf_counter()
    loop_s = time.thread_time() - loop0
    out.cpu = {"the event loop's thread": loop_s,
               "the edge's other threads (the store's writer)":
                   time.process_time() - proc0 - loop_s,
               "the wire worker": _cpu_s(worker) - worker0,
               "the broker": _cpu_s(broker_pid) - broker0}
    stop.set()
    await task
    t0 = mqtt.session_started
    out.seconds, out.start_s = t_end - t0, t0 - t_start
    return out


async def main(args: argparse.Namespace) -> None:
    sub = shutil.which("mosquitto_sub")
    if sub is None:
        raise SystemExit("mosquitto_sub not found (./run-tests installs mosquitto-clients)")
    collect_garbage_less_often()  # as `huimin edge` does in its own process
    work = scratch("huimin-bench-ingest-")
    n, docks = args.events, args.docks
    broker, edge_pw = secure_broker(work, SITE)
    base_pw = broker.account("bench-base", "monitor")
    devs = [f"d{i:04d}" for i in range(docks)]
    fleet = Fleet(broker, SITE, devs)
    fleet.write_keys(work / "device-keys.toml")  # beside edge.db: the edge's keys file
    await broker.start()
    base_env = mosquitto_sub_env(work, "bench-base", base_pw)
    base_cmd = [sub, "-h", "127.0.0.1", "-p", str(broker.port), "-c", "-i", "bench-base",
                "-q", "1", "-t", f"huimin/{SITE}/+/event"]
    # 1. Both sessions exist; the docks say hello (so the edge knows them), then
    #    both consumers go away.
    await asyncio.to_thread(subprocess.run, [*base_cmd, "-W", "1"], capture_output=True,
                            env=base_env)
    async with fleet:
        for d in devs:
            fleet.publish(d, "hello", {"t": "hello", "dev": d, "kind": "dock", "fw": "bench",
                                       "slots": 12, "boot": 1, "epoch": "e"})
        await fleet.flush()
        await _run_edge(_edge(work, broker, docks, edge_pw), 0)
        # 2. The backlog: N events, each dock in order, each sealed by its dock.
        t0 = time.perf_counter()
        for k in range(n):
            i, seq = k % docks, k // docks + 1
            fleet.publish(devs[i], "event", {
                "t": "ev", "dev": devs[i], "epoch": "e", "seq": seq,
                "ev": "rented" if seq % 2 else "returned", "slot": seq % 12,
                "bike": f"0B{i:04X}{seq:04X}"})
            if k % 2000 == 1999:
                await fleet.flush()
        await fleet.flush()
    print(f"backlog: {n} events from {docks} docks queued in {time.perf_counter() - t0:.1f} s")
    # 3. Baseline: mosquitto_sub drains its backlog.
    t0 = time.perf_counter()
    # Nothing else runs meanwhile: a blocking wait keeps the timing clean.
    r = subprocess.run([*base_cmd, "-C", str(n), "-W", "120"],  # noqa: ASYNC221
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=base_env)
    base_s = time.perf_counter() - t0
    if r.returncode != 0:
        print(f"WARNING: mosquitto_sub ended with {r.returncode}: {r.stderr.decode()[:200]}")
    # 4. The edge drains its backlog into the journal.
    svc = _edge(work, broker, docks, edge_pw, args.worker_processes)
    if args.profile:
        from pyinstrument import Profiler

        with Profiler(async_mode="disabled", interval=0.0005) as prof:
            drain = await _run_edge(svc, n, broker.proc.pid if broker.proc else None)
        args.profile.write_text(prof.output_text(unicode=True, show_all=False))
        print(f"profile of the edge's drain: {args.profile}")
    else:
        drain = await _run_edge(svc, n, broker.proc.pid if broker.proc else None)
    edge_s, start_s = drain.seconds, drain.start_s
    stored = svc.metrics.get("events.stored")
    await broker.stop()
    base_rate, edge_rate = n / base_s, n / edge_s
    print(f"baseline  mosquitto_sub          {base_rate:9.0f} msg/s  ({base_s:.2f} s, includes "
          "its start)")
    print(f"edge      decoded, journaled, acked {edge_rate:9.0f} msg/s  ({edge_s:.2f} s from "
          f"its MQTT CONNACK; it started in {start_s:.2f} s; {stored} stored)")
    ratio = edge_rate / base_rate
    print(f"ratio {ratio:.2f}x of the broker's delivery rate (target >= 0.35x: "
          f"{'met' if ratio >= 0.35 else 'NOT met'})")
    # Where the CPU went, and what a machine with a core for each part would give:
    # the busiest part bounds the drain there (a 4-core Pi runs these four at once).
    print(f"CPU per 1,000 events ({os.cpu_count()} cores here, "
          f"{sum(drain.cpu.values()) / edge_s:.2f} of them busy):")
    for part, cpu in drain.cpu.items():
        print(f"  {cpu / n * 1000:6.3f} s  {part}")
    busiest = max(drain.cpu, key=lambda k: drain.cpu[k])
    bound = n / drain.cpu[busiest] if drain.cpu[busiest] else float("inf")
    print(f"a core each: {busiest} bounds the drain at {bound:,.0f} events/s, "
          f"{bound / base_rate:.2f}x this baseline")
    emit("ingest", [row("edge ingest (decoded, journaled, acked)", edge_rate, "events/s",
                        base_rate, ">= 0.35x"),
                    row("its bound with a core each (busiest part's CPU per event)", bound,
                        "events/s", base_rate, None)])
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--docks", type=int, default=1000)
    ap.add_argument("--worker-processes", type=int, default=1, choices=(0, 1),
                    help="[mqtt] worker_processes: 0 checks and seals every message in the "
                    "edge's own process (the profile before the worker)")
    ap.add_argument("--profile", type=Path, metavar="FILE",
                    help="profile the edge's drain with pyinstrument (the event loop's thread "
                    "and paho's) into FILE")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(ap.parse_args()))
