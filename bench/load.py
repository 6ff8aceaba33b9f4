"""One edge process under a town's normal load: how much of a core it uses.

The edge runs as on a Pi (`huimin edge`, its own process) for N docks (default
2,000), on the county's secure setup: each dock its own broker account over
TLS, every message sealed with its key (bench/fleet.py). Each sends
a retained `state` heartbeat from each dock every `--heartbeat` seconds, and
rent/return events (each with its new state) at `--per-hour` per dock. Over
the measuring window the edge's CPU time (utime + stime from /proc) is divided
by the wall time. Baseline, in the same window: the broker's own CPU for the
same traffic. Every event must be stored; the edge's /api/metrics says so.
DESIGN.md's target: 2,000 docks under half a core. Usage:
    .venv/bin/python bench/load.py [--docks 2000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fleet import Fleet, secure_broker
from bench.result import emit, row, scratch
from bench.simdocks import event, rent_or_return
from edge.adapters.api_tokens import ApiTokens
from edge.adapters.device_keys import write_private
from tools.broker import Broker, free_port

ROOT = Path(__file__).resolve().parent.parent
SITE = "b"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def family(pid: int) -> list[int]:
    """The process and its children, theirs too (the edge's wire worker)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").iterdir():
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def family_cpu_s(pid: int) -> float:
    """CPU seconds of the process and its living children."""
    total = 0.0
    for p in family(pid):
        with contextlib.suppress(OSError):
            total += cpu_s(p)
    return total


def edge_toml(work: Path, broker: Broker, docks: int, port: int, password: str) -> Path:
    lines = ["[edge]", f'site = "{SITE}"', f"http_port = {port}", f'db = "{work / "edge.db"}"',
             "heartbeat_timeout_s = 120", "", "[mqtt]", f'url = "{broker.url}"',
             'username = "huimin-edge"', f'password = "{password}"', ""]
    for i in range(docks):
        lines += ["[[stations]]", f'id = "s{i:04d}"', f'name_zh = "站{i}"', f'name_en = "S{i}"',
                  f"lat = {30.6 + i * 1e-4:.6f}", "lon = 119.6", f'devices = ["d{i:04d}"]', ""]
    p = work / "edge.toml"
    write_private(p, "\n".join(lines))
    return p


def metrics(port: int, token: str) -> dict[str, int]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/metrics",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        doc = json.loads(r.read())
    counters: dict[str, int] = doc.get("counters", doc)
    return counters


async def main(args: argparse.Namespace) -> None:
    work = scratch("huimin-bench-load-")
    broker, edge_pw = secure_broker(work, SITE)
    n = args.docks
    devs = [f"d{i:04d}" for i in range(n)]
    fleet = Fleet(broker, SITE, devs)
    fleet.write_keys(work / "device-keys.toml")
    token = ApiTokens(work / "api-tokens.toml").add("bench")  # /api/metrics is a technician's
    await broker.start()
    assert broker.proc is not None
    port = free_port()
    with open(work / "edge.log", "wb") as log:  # noqa: ASYNC230 (opening a log is instant)
        edge = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tools.cli", "edge", "--config",
            str(edge_toml(work, broker, n, port, edge_pw)), stdout=log, stderr=log, cwd=ROOT)
    for _ in range(600):
        try:
            metrics(port, token)
            break
        except OSError:
            await asyncio.sleep(0.1)
    await fleet.__aenter__()
    rng = random.Random(1)
    slots = [list("LLLLLLEEEEEE") for _ in range(n)]
    state_n = [0] * n
    seq = [0] * n

    def send(i: int, leaf: str, msg: dict[str, object], qos: int = 1,
             retain: bool = False) -> None:
        fleet.publish(devs[i], leaf, msg, qos=qos, retain=retain)

    def state(i: int) -> None:
        state_n[i] += 1
        send(i, "state", {"t": "state", "dev": devs[i], "boot": 1, "n": state_n[i],
                          "slots": "".join(slots[i]), "mem": 9000}, qos=0, retain=True)

    for i in range(n):
        send(i, "hello", {"t": "hello", "dev": devs[i], "kind": "dock", "fw": "bench",
                          "slots": 12, "boot": 1, "epoch": "e"}, retain=True)
        state(i)
    await asyncio.sleep(5)  # births settle
    events = 0
    step = 0.05
    hb_per_step = n * step / args.heartbeat
    ev_per_step = n * args.per_hour / 3600 * step
    hb_next = 0
    carry_hb = carry_ev = 0.0
    t0 = time.perf_counter()
    e0, b0 = family_cpu_s(edge.pid), cpu_s(broker.proc.pid)
    while time.perf_counter() - t0 < args.seconds:
        carry_hb += hb_per_step
        while carry_hb >= 1:
            carry_hb -= 1
            state(hb_next)
            hb_next = (hb_next + 1) % n
        carry_ev += ev_per_step
        while carry_ev >= 1:
            carry_ev -= 1
            i = rng.randrange(n)
            k, ev = rent_or_return(slots[i], rng)
            seq[i] += 1
            send(i, "event", event(i, seq[i], k, ev))
            state(i)
            events += 1
        await asyncio.sleep(step)
    wall = time.perf_counter() - t0
    e1, b1 = family_cpu_s(edge.pid), cpu_s(broker.proc.pid)
    await asyncio.sleep(2)  # the last events land
    stored = metrics(port, token).get("events.stored", 0)
    await fleet.__aexit__(None, None, None)
    edge.terminate()
    await edge.wait()
    await broker.stop()
    edge_cores, broker_cores = (e1 - e0) / wall, (b1 - b0) / wall
    msgs = n * wall / args.heartbeat + 2 * events
    print(f"{n} docks for {wall:.0f} s: {msgs / wall:.0f} messages/s "
          f"({events} events, heartbeat every {args.heartbeat:g} s)")
    print(f"edge   {edge_cores:.3f} of a core  (target < 0.5: "
          f"{'met' if edge_cores < 0.5 else 'NOT met'}); events stored {stored} of {events}")
    print(f"broker {broker_cores:.3f} of a core  (edge/broker ratio "
          f"{edge_cores / broker_cores if broker_cores else float('nan'):.1f}x)")
    emit("load", [row(f"edge CPU, {n} docks at a town's load", edge_cores, "cores",
                      broker_cores, "< 0.5")])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--docks", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--heartbeat", type=float, default=30, help="s between a dock's states")
    ap.add_argument("--per-hour", type=float, default=20,
                    help="rent/return events per dock per hour (default 20, a busy hour)")
    asyncio.run(main(ap.parse_args()))
