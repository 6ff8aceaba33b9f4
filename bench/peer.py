"""Side by side with a peer: ThingsBoard's IoT gateway
(../shared/peers/tb-gateway/run.sh) and our edge under the same work.

The work (default): an outage's backlog. Each middle box is stopped (SIGSTOP),
DOCKS x EVENTS dock events are published QoS 1 to its device Mosquitto (which
queues them for its session), and it is resumed (SIGCONT); the drain is timed
from the resume to the last new event at its upstream, and CPU is counted from
the resume (the peer's harness: BACKLOG=1). --live times a live burst instead,
from the first publish (the harness's publisher, ~4,000 events/s, caps that).
Either way the events are interleaved round-robin over the docks, and:
  - the peer: its harness counts distinct (device, seq) at a stub ThingsBoard;
  - our edge: `huimin edge` as its own process, as on a Pi, on the county's
    secure setup (each dock its own account over TLS, each event sealed with
    its key), storing each event (SQLite, committed) before its ack and
    forwarding it over its signed webhook to the development backend, which
    counts distinct (device, seq).
CPU seconds (utime + stime of the process and its children, from /proc: our
edge's wire worker counts) per 1,000 delivered events (delivered counted every
50 ms) and peak RSS (the same processes, sampled every 0.25 s) are measured in
the same phase.

The difference the numbers do not show: the gateway acks a dock's event when
it is in its memory queue (README of the peer), our edge only after its
commit, and only the committed event is acked to the dock.

Usage: .venv/bin/python bench/peer.py [--docks 500] [--events 40] [--live] [--no-peer]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fleet import Fleet, secure_broker
from bench.load import family, family_cpu_s
from bench.result import emit, row, scratch
from edge.adapters.device_keys import write_private
from hardware.sim.backend import DevBackend
from tools import ui
from tools.broker import free_port

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT.parent / "shared" / "peers" / "tb-gateway" / "run.sh"
SITE = "b"


def rss_mb(pid: int) -> float:
    """The process's resident set and its children's (the edge's wire worker)."""
    return sum(_own_rss_mb(p) for p in family(pid))


def _own_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


BATCH = 1000  # rows per webhook POST ([[uplinks]] batch, at most 1,000)


def _toml(work: Path, port: int, broker_url: str, password: str, backend_url: str,
          secret: str, docks: int) -> Path:
    lines = ["[edge]", f'site = "{SITE}"', f"http_port = {port}", f'db = "{work / "edge.db"}"',
             "heartbeat_timeout_s = 600", "", "[mqtt]", f'url = "{broker_url}"',
             'username = "huimin-edge"', f'password = "{password}"', "",
             "[[uplinks]]", 'name = "city"', 'kind = "webhook"', f'url = "{backend_url}/webhook"',
             f'secret = "{secret}"', f"batch = {BATCH}", ""]
    for i in range(docks):
        lines += ["[[stations]]", f'id = "s{i:04d}"', f'name_zh = "站{i}"',
                  f"lat = {30.6 + i * 1e-4:.6f}", "lon = 119.6", f'devices = ["d{i:04d}"]', ""]
    p = work / "edge.toml"
    write_private(p, "\n".join(lines))
    return p


async def run_edge(docks: int, per_dock: int, backlog: bool = True) -> dict[str, Any]:
    """Our edge under the burst; the peer's keys, for the side-by-side line."""
    work = scratch("huimin-bench-peer-")
    broker, edge_pw = secure_broker(work, SITE)
    devs = [f"d{i:04d}" for i in range(docks)]
    fleet = Fleet(broker, SITE, devs)
    fleet.write_keys(work / "device-keys.toml")
    secret = "bench-" + os.urandom(12).hex()
    backend = DevBackend(work / "backend.db", {SITE: secret})
    backend_url = await backend.start()
    await broker.start()
    port = free_port()
    toml = _toml(work, port, broker.url, edge_pw, backend_url, secret, docks)
    with open(work / "edge.log", "wb") as log:  # noqa: ASYNC230 (opening a log is instant)
        # HUIMIN_PROFILE=FILE: the edge process under pyinstrument (its report at exit).
        prof = os.environ.get("HUIMIN_PROFILE")
        wrap = ["-m", "pyinstrument", "-o", prof, "-r", "text"] if prof else []
        edge = await asyncio.create_subprocess_exec(
            sys.executable, *wrap, "-m", "tools.cli", "edge", "--config", str(toml),
            stdout=log, stderr=log, cwd=ROOT)
    try:
        async with fleet:
            for d in devs:  # the docks' births: the edge knows them before the burst
                fleet.publish(d, "hello", {"t": "hello", "dev": d, "kind": "dock",
                                           "fw": "bench", "slots": 12, "boot": 1, "epoch": "e"})
            await fleet.flush()
            await asyncio.sleep(2.0)
            total = docks * per_dock
            if backlog:
                edge.send_signal(signal.SIGSTOP)  # away: the broker queues for its session
            e0 = family_cpu_s(edge.pid)
            peak = rss_mb(edge.pid)
            t0 = time.perf_counter()
            for k in range(total):
                i, seq = k % docks, k // docks + 1
                fleet.publish(devs[i], "event", {
                    "t": "ev", "dev": devs[i], "epoch": "e", "seq": seq,
                    "ev": "rented" if seq % 2 else "returned", "slot": seq % 12,
                    "bike": f"0B{i:04X}{seq:04X}"})
                if k % 4000 == 3999:
                    await fleet.flush()
            await fleet.flush()
            publish_s = time.perf_counter() - t0
            if backlog:
                t0 = time.perf_counter()  # the drain: from the resume
                edge.send_signal(signal.SIGCONT)
            last_new, count, quiet_since = t0, 0, time.perf_counter()
            # Counted every 50 ms (the end of a ~2.5 s drain to within 2%); RSS each 0.25 s.
            polls = 0
            while count < total and time.perf_counter() - quiet_since < 20:
                await asyncio.sleep(0.05)
                polls += 1
                if polls % 5 == 0:
                    peak = max(peak, rss_mb(edge.pid))
                n = backend.db.execute("SELECT count(*) FROM events").fetchone()[0]
                if n > count:
                    count, last_new = n, time.perf_counter()
                    quiet_since = last_new
            wall = last_new - t0
            cpu = family_cpu_s(edge.pid) - e0
    finally:
        edge.terminate()
        await edge.wait()
        await broker.stop()
        await backend.stop()
    return {"peer": "huimin-edge", "docks": docks, "sent": total, "delivered_unique": count,
            "loss_ratio": round(1 - count / total, 6), "wall_s": round(wall, 3),
            "rate_delivered_per_s": round(count / wall, 1) if wall else 0.0,
            "gateway_cpu_s": round(cpu, 2), "gateway_rss_mb": round(peak, 1),
            "publish_s": round(publish_s, 3), "mode": "backlog" if backlog else "live"}


def run_peer(docks: int, per_dock: int, backlog: bool = True) -> dict[str, Any] | None:
    """The peer's own harness; None (with the reason on stderr) where it cannot run."""
    if not PEER.is_file():
        print(f"peer: {PEER} not found (no ../shared in this clone): peer not run",
              file=sys.stderr)
        return None
    # Its durable storage (sqlite), as our edge stores each event before its ack.
    env = {**os.environ, "STORAGE": "sqlite"} | ({"BACKLOG": "1"} if backlog else {})
    r = subprocess.run(["bash", str(PEER), str(docks), str(per_dock)], capture_output=True,
                       text=True, timeout=1800, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        print(f"peer: run.sh failed ({r.returncode}): {r.stderr[-400:]}", file=sys.stderr)
        return None
    doc: dict[str, Any] = json.loads(lines[-1])
    return doc


def per_1000(d: dict[str, Any]) -> float:
    n = d.get("delivered_unique") or 0
    return d["gateway_cpu_s"] / n * 1000 if n else float("nan")


def table(ours: dict[str, Any], peer: dict[str, Any] | None) -> str:
    rows: list[tuple[str, str, str]] = []

    def cell(d: dict[str, Any] | None, key: str, fmt: str = "{}") -> str:
        return fmt.format(d[key]) if d is not None and key in d else "-"
    rows = [("events delivered / sent", f"{ours['delivered_unique']}/{ours['sent']}",
              f"{peer['delivered_unique']}/{peer['sent']}" if peer else "-"),
             ("delivered per s", cell(ours, "rate_delivered_per_s", "{:.0f}"),
              cell(peer, "rate_delivered_per_s", "{:.0f}")),
             ("CPU s per 1,000 events", f"{per_1000(ours):.2f}",
              f"{per_1000(peer):.2f}" if peer else "-"),
             ("peak RSS, MB", cell(ours, "gateway_rss_mb"), cell(peer, "gateway_rss_mb")),
             ("acks a dock's event", "after its commit", "before it is stored")]
    t = ui.table("", "huimin edge", "ThingsBoard gateway")
    for r in rows:
        t.add_row(*r)
    out = [ui.text(t)]
    if peer and peer.get("rate_delivered_per_s"):
        ratio = ours["rate_delivered_per_s"] / peer["rate_delivered_per_s"]
        out.append(f"rate ratio {ratio:.1f}x the peer's (target >= 10x: "
                   f"{'met' if ratio >= 10 else 'NOT met'})")
    return "\n".join(out)


async def main(args: argparse.Namespace) -> None:
    backlog = not args.live
    ours = await run_edge(args.docks, args.events, backlog)
    print(json.dumps(ours))
    peer = None if args.no_peer else await asyncio.to_thread(run_peer, args.docks, args.events,
                                                               backlog)
    if peer is not None:
        print(json.dumps(peer))
    print(table(ours, peer))
    what = "backlog drained" if backlog else "burst"
    rows = [row(f"edge {what}, delivered to the backend", ours["rate_delivered_per_s"],
                "events/s", peer["rate_delivered_per_s"] if peer else None,
                ">= 10x the peer"),
            row("edge CPU per 1,000 events", per_1000(ours), "CPU s",
                per_1000(peer) if peer else None),
            row("edge peak RSS", ours["gateway_rss_mb"], "MB",
                peer["gateway_rss_mb"] if peer else None)]
    emit("peer", rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--docks", type=int, default=500)
    ap.add_argument("--events", type=int, default=40, help="events per dock (default 40)")
    ap.add_argument("--live", action="store_true",
                    help="a live burst, timed from the first publish (default: a backlog's drain)")
    ap.add_argument("--no-peer", action="store_true", help="only our edge")
    asyncio.run(main(ap.parse_args()))
