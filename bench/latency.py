"""Dock event -> backend and dock event -> GBFS latency at 1,000 docks.

1,000 simulated docks, each with its own broker account over TLS and its own
key sealing every message (bench/fleet.py: 1,000 MicroPython processes do not
fit one machine; the edge cannot tell, it sees the same topics, accounts and
sealed messages). The edge runs with a webhook uplink to the
development backend. Each event's publish time is compared with:
  - backend: when the development backend stored it (its `received`),
  - GBFS's station state: when the station's status inside the edge, which
    station_status.json is built from on the next request, first showed the
    new bike count (checked every 1 ms in process: the edge's own latency),
  - GBFS polled: when /gbfs/3.0/station_status.json (polled every 20 ms with
    ETag, a 1,000-station document fetched and parsed in this process) first
    showed it: what a client polling that fast would see,
  - baseline: when a plain subscriber on the same broker got the same message.
Prints p50/p99 for each and their ratio to the baseline. Usage:
    .venv/bin/python bench/latency.py [--docks 1000] [--seconds 20] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
import time
from pathlib import Path

import aiohttp
import paho.mqtt.client as paho

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fleet import Fleet, secure_broker
from bench.result import emit, row, scratch
from bench.simdocks import event, rent_or_return
from edge.config import parse
from edge.runtime import Edge, collect_garbage_less_often
from hardware.sim.backend import DevBackend
from tools.broker import free_port

SECRET = "bench-secret-0123456789"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


async def main(args: argparse.Namespace) -> None:
    collect_garbage_less_often()  # as `huimin edge` does in its own process
    work = scratch("huimin-bench-")
    broker, edge_pw = secure_broker(work, "b")
    base_pw = broker.account("bench-baseline", "monitor")
    devs = [f"d{i:04d}" for i in range(args.docks)]
    fleet = Fleet(broker, "b", devs)
    fleet.write_keys(work / "device-keys.toml")
    await broker.start()
    backend = DevBackend(work / "backend.db", SECRET)
    burl = await backend.start()
    n = args.docks
    raw = {"edge": {"site": "b", "http_port": free_port(), "db": str(work / "edge.db"),
                    "heartbeat_timeout_s": 600},
           "mqtt": {"url": broker.url, "username": "huimin-edge", "password": edge_pw},
           "uplinks": [{"name": "city", "kind": "webhook", "url": f"{burl}/webhook",
                        "secret": SECRET}],
           "stations": [{"id": f"s{i:04d}", "name_zh": f"站{i}", "lat": 30.6 + i * 1e-4,
                         "lon": 119.6, "devices": [f"d{i:04d}"]} for i in range(n)]}
    svc = Edge(parse(raw))
    stop = asyncio.Event()
    edge_task = asyncio.create_task(svc.run(stop))
    await svc.ready.wait()
    await svc.transports[0].connected.wait()

    sent: dict[tuple[str, int], float] = {}  # (device, seq) -> publish time
    gbfs_want: dict[str, tuple[int, float]] = {}  # station -> (bikes, publish time)
    base_got: dict[str, float] = {}
    lock = threading.Lock()

    def on_base(c: object, u: object, m: paho.MQTTMessage) -> None:
        doc = json.loads(m.payload)
        if doc.get("t") == "ev":
            with lock:
                base_got[f"{doc['dev']}:{doc['seq']}"] = time.time()

    base = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-baseline")
    base.username_pw_set("bench-baseline", base_pw)
    base.on_message = on_base
    base.connect("127.0.0.1", broker.port)
    base.subscribe("huimin/b/+/event", qos=1)
    base.loop_start()
    await fleet.__aenter__()

    slots = [list("LLLLLLEEEEEE") for _ in range(n)]
    state_n = [0] * n

    def publish(dev: str, leaf: str, msg: dict[str, object], qos: int = 1) -> None:
        fleet.publish(dev, leaf, msg, qos=qos)

    for i in range(n):
        dev = devs[i]
        publish(dev, "hello", {"t": "hello", "dev": dev, "kind": "dock",
                               "fw": "bench", "slots": 12, "boot": 1, "epoch": "e"})
        state_n[i] += 1
        publish(dev, "state", {"t": "state", "dev": dev, "boot": 1, "n": state_n[i],
                               "slots": "".join(slots[i])})
    await asyncio.sleep(3)  # births settle

    async def watch_gbfs() -> None:
        url = f"http://127.0.0.1:{svc.http_port}/gbfs/3.0/station_status.json"
        etag = ""
        async with aiohttp.ClientSession() as s:
            while True:
                async with s.get(url, headers={"If-None-Match": etag}) as r:
                    if r.status == 200:
                        etag = r.headers["ETag"]
                        doc = await r.json()
                        now = time.time()
                        for st in doc["data"]["stations"]:
                            w = gbfs_want.get(st["station_id"])
                            if w and st["num_vehicles_available"] == w[0]:
                                gbfs_lat.append(now - w[1])
                                del gbfs_want[st["station_id"]]
                await asyncio.sleep(0.02)

    async def watch_state() -> None:
        """The same change inside the edge: when the station's status, the one
        station_status is built from on the next request (~1.2 ms a rebuild at
        1,000 stations), first shows it. Checked every millisecond, in process."""
        while True:
            now = time.time()
            for sid, (bikes, t0) in list(state_want.items()):
                if svc.stations.by_id[sid].status(svc.stations.started).bikes_available \
                        == bikes:
                    state_lat.append(now - t0)
                    del state_want[sid]
            await asyncio.sleep(0.001)

    gbfs_lat: list[float] = []
    state_lat: list[float] = []
    state_want: dict[str, tuple[int, float]] = {}
    watcher = asyncio.create_task(watch_gbfs())
    state_watcher = asyncio.create_task(watch_state())
    seq = [0] * n
    t_end = time.time() + args.seconds
    import random
    rng = random.Random(1)
    interval = 1.0 / args.rate
    while time.time() < t_end:
        i = rng.randrange(n)
        dev, sid = f"d{i:04d}", f"s{i:04d}"
        if sid in gbfs_want:
            await asyncio.sleep(interval)
            continue
        s = slots[i]
        k, ev = rent_or_return(s, rng)
        seq[i] += 1
        state_n[i] += 1
        t0 = time.time()
        with lock:
            sent[(dev, seq[i])] = t0
        gbfs_want[sid] = state_want[sid] = (s.count("L"), t0)
        publish(dev, "event", event(i, seq[i], k, ev))
        publish(dev, "state", {"t": "state", "dev": dev, "boot": 1, "n": state_n[i],
                               "slots": "".join(s)}, qos=0)
        await asyncio.sleep(interval)
    await asyncio.sleep(3)  # drain
    watcher.cancel()
    state_watcher.cancel()

    rows = backend.db.execute("SELECT device, body, received FROM events").fetchall()
    back_lat = []
    for dev, body, received in rows:
        t0 = sent.get((dev, json.loads(body)["seq"]))
        if t0 is not None:
            back_lat.append(received - t0)
    with lock:
        base_lat = [base_got[f"{d}:{q}"] - t0 for (d, q), t0 in sent.items()
                    if f"{d}:{q}" in base_got]
    await fleet.__aexit__(None, None, None)
    base.loop_stop()
    stop.set()
    await edge_task
    await backend.stop()
    await broker.stop()

    b50, b99 = pct(base_lat, 50), pct(base_lat, 99)
    rate = len(sent) / args.seconds
    print(f"docks {n}, events {len(sent)} over {args.seconds:g} s ({rate:.0f}/s), "
          f"stored at backend {len(back_lat)}, GBFS changes seen {len(gbfs_lat)}")
    print(f"baseline broker -> subscriber  p50 {b50 * 1000:7.1f} ms  p99 {b99 * 1000:7.1f} ms")
    for name, xs in (("dock event -> backend", back_lat),
                     ("dock event -> GBFS's station state", state_lat),
                     ("dock event -> GBFS polled (20 ms)", gbfs_lat)):
        p50, p99 = pct(xs, 50), pct(xs, 99)
        print(f"{name:35s} p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
              f"(x{p50 / b50:.1f} / x{p99 / b99:.1f} of baseline; target p99 < 500 ms: "
              f"{'met' if p99 < 0.5 else 'NOT met'})")
    if len(back_lat) != len(sent):
        print(f"WARNING: {len(sent) - len(back_lat)} events not at the backend")
    emit("latency", [row("dock event -> backend p99", pct(back_lat, 99) * 1000, "ms",
                         b99 * 1000, "< 500 ms"),
                     row("dock event -> GBFS station state p99", pct(state_lat, 99) * 1000,
                         "ms", b99 * 1000, "<= 1.5x broker p99"),
                     row("dock event -> GBFS polled every 20 ms p99", pct(gbfs_lat, 99) * 1000,
                         "ms", b99 * 1000, "< 500 ms")])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--docks", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=50, help="events per second (all docks)")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(ap.parse_args()))
