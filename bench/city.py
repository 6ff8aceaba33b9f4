"""The city tier's fan-in: N sites' bridges publishing into the 3-node NATS
JetStream cluster, the backend consuming durably (a transaction per fetched
batch, each message acked after it).

Each site here is its bridge alone (cloud_bridge/nats_uplink.py, the class an
edge runs, with its own account over TLS), fed with event rows as its outbox
would hand them: the edge's own ingest is bench/ingest.py's. Two phases:
  - burst: every site hands over its share of EVENTS in batches of 500 at
    once (their rate: into the tier, quorum-acked); then the backend, alone,
    drains the backlog (its rate: committed and acked per second). Baseline
    in the same run: the same number of events published by one plain
    nats-py client to a stream nobody consumes, the tier's own intake;
  - paced: every site sends RATE events/s in batches of 10; each event's
    latency is its backend commit time minus its stamp; p50/p99 printed.

Usage: .venv/bin/python bench/city.py [--sites 3] [--events 20000] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import ssl
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats

from bench.result import emit, row, scratch
from cloud_bridge.nats_uplink import NatsUplink
from edge.config import UplinkConfig
from edge.core.metrics import Metrics
from edge.core.records import OutboxRow
from hardware.sim.backend import DevBackend
from hardware.sim.city import site_names
from hardware.sim.city_backend import CityLink, add_stream_placed
from hardware.sim.city_tier import CityTier


def _row(site: str, n: int, at: float) -> OutboxRow:
    dev, seq = f"dock-{n % 100:03d}", n // 100 + 1
    body = {"type": "rented" if seq % 2 else "returned", "site": site,
            "station": f"{site}-{n % 100:03d}", "device": dev, "slot": seq % 12,
            "bike": f"0B{n:08X}", "epoch": "e", "seq": seq, "at": at, "clock": "dock",
            "received": at, "rental_id": None}
    return OutboxRow(n, 1, "event", f"ev:{dev}:e:{seq}", json.dumps(body), at)


async def _wait_committed(backend: DevBackend, total: int, limit_s: float = 300) -> float:
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        n = backend.db.execute("SELECT count(*) FROM events").fetchone()[0]
        if n >= total:
            return time.perf_counter()
        await asyncio.sleep(0.02)
    raise TimeoutError(f"only {n} of {total} events reached the backend")


async def _baseline(tier: CityTier, sites: list[str], per_site: int) -> float:
    """The tier's own intake: one client, publishes acked by the stream."""
    ctx = ssl.create_default_context(cafile=str(tier.ca))
    nc = await nats.connect(tier.urls, user="backend", password=tier.passwords["backend"],
                            tls=ctx)
    js = nc.jetstream(timeout=10)
    async with asyncio.timeout(30):
        await add_stream_placed(js, name="BENCH_BASE", subjects=["bench.>"], num_replicas=3,
                                storage="file")
    payload = _row(sites[0], 1, time.time()).body.encode()
    t0 = time.perf_counter()
    total = per_site * len(sites)
    for start in range(0, total, 500):
        futs = [await js.publish_async(f"bench.{k}", payload)
                for k in range(start, min(start + 500, total))]
        await asyncio.gather(*futs)
    took = time.perf_counter() - t0
    await js.delete_stream("BENCH_BASE")
    await nc.close()
    return total / took


async def run(sites_n: int, per_site: int, rate: float, paced_s: float) -> dict[str, Any]:
    work = scratch("huimin-bench-city-")
    sites = site_names(sites_n)
    keys = {s: "bench-key-" + s + "-0123456789" for s in sites}
    tier = CityTier(work / "tier", sites)
    await tier.start()
    backend = DevBackend(work / "backend.db", keys)
    link = CityLink(backend, tier.urls, tier.ca, tier.passwords["backend"], keys)
    try:
        await link.start(consume=False)
    except BaseException:  # the nodes would outlive the benchmark
        await link.stop()
        await tier.stop()
        raise
    uplinks: list[NatsUplink] = []
    runs: list[asyncio.Task[None]] = []
    metrics = Metrics()
    for s in sites:
        cfg = UplinkConfig(name="city-tier", kind="nats", url=",".join(tier.urls),
                           secret=keys[s], batch=500, timeout_s=10, username=f"site-{s}",
                           password=tier.passwords[f"site-{s}"], ca=tier.ca)
        up = NatsUplink(cfg, s, metrics, lambda: None)
        uplinks.append(up)
        runs.append(asyncio.create_task(up.run(lambda r: None), name=f"uplink:{s}"))
    try:
        for up in uplinks:
            await asyncio.wait_for(up.connected.wait(), 30)
        base_rate = await _baseline(tier, sites, per_site)

        async def burst(up: NatsUplink) -> None:
            now = time.time()
            rows = [_row(up.site, n, now) for n in range(per_site)]
            for start in range(0, per_site, 500):
                await up.deliver(rows[start:start + 500])

        t0 = time.perf_counter()
        await asyncio.gather(*(burst(up) for up in uplinks))
        sites_rate = per_site * sites_n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        link.consume()  # the backend drains the backlog alone
        t_end = await _wait_committed(backend, per_site * sites_n)
        burst_rate = per_site * sites_n / (t_end - t0)

        link.latencies.clear()

        async def paced(up: NatsUplink) -> None:
            n = per_site
            step = 10 / rate
            t_next = time.perf_counter()
            stop = t_next + paced_s
            while t_next < stop:
                now = time.time()
                await up.deliver([_row(up.site, n + k, now) for k in range(10)])
                n += 10
                t_next += step
                await asyncio.sleep(max(0.0, t_next - time.perf_counter()))

        await asyncio.gather(*(paced(up) for up in uplinks))
        await asyncio.sleep(2.0)  # the last paced events land
        total = backend.db.execute("SELECT count(*) FROM events").fetchone()[0]
        lat = sorted(link.latencies)
        sent_paced = len(lat)
        p50 = statistics.median(lat) if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
        dups = backend.stats["duplicates"]
    finally:
        for up in uplinks:
            await up.close()
        for t in runs:
            t.cancel()
        await link.stop()
        await backend.stop()
        await tier.stop()
    return {"sites": sites_n, "events_burst": per_site * sites_n, "tier_intake_per_s": base_rate,
            "sites_to_tier_per_s": sites_rate, "fan_in_per_s": burst_rate,
            "ratio": burst_rate / base_rate,
            "paced_events": sent_paced, "paced_rate_per_site": rate,
            "latency_p50_ms": p50 * 1000, "latency_p99_ms": p99 * 1000,
            "duplicates": dups, "stored": total}


def report(r: dict[str, Any]) -> str:
    return "\n".join([
        f"city tier, {r['sites']} sites, 3 nodes (R3, file storage, TLS):",
        f"  tier intake, one plain client   {r['tier_intake_per_s']:9.0f} events/s",
        f"  sites' bridges into the tier    {r['sites_to_tier_per_s']:9.0f} events/s "
        "(quorum-acked)",
        f"  backend drains the tier         {r['fan_in_per_s']:9.0f} events/s "
        f"({r['ratio']:.2f}x the intake; {r['events_burst']} events, committed, acked)",
        f"  event -> backend commit, paced {r['paced_rate_per_site']:.0f}/s per site: "
        f"p50 {r['latency_p50_ms']:.1f} ms, p99 {r['latency_p99_ms']:.1f} ms "
        f"({r['paced_events']} events)",
    ])


async def main(args: argparse.Namespace) -> None:
    r = await run(args.sites, args.events // args.sites, args.rate, args.seconds)
    print(json.dumps(r))
    print(report(r))
    emit("city", [row(f"sites' bridges into the tier ({r['sites']} sites)",
                      r["sites_to_tier_per_s"], "events/s", r["tier_intake_per_s"]),
                  row("backend drains the tier", r["fan_in_per_s"], "events/s",
                      r["tier_intake_per_s"]),
                  row("event -> backend commit p99", r["latency_p99_ms"], "ms")])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--events", type=int, default=30000, help="burst events, all sites")
    ap.add_argument("--rate", type=float, default=200, help="paced events/s per site")
    ap.add_argument("--seconds", type=float, default=10, help="paced phase length")
    ap.add_argument("-v", "--verbose", action="store_true", help="the tier's and link's log")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    logging.getLogger("asyncio").addFilter(
        lambda r: "eof_received() has no effect" not in r.getMessage())
    asyncio.run(main(args))
