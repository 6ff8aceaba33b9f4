#!/usr/bin/env python3
"""A soak to run before closing an issue: a simulated town (docks on serial and
MQTT, a kiosk, riders, villagers) under random faults for an hour, then the
audit of counts and of meaning (hardware/sim/audit.py), every device's lowest
free heap, and the edge's memory (RSS, its own process) over the run.

    .venv/bin/python scripts/soak.py                  # an hour, a fault every 20 s or so
    .venv/bin/python scripts/soak.py --minutes 10 --seed 7
    .venv/bin/python scripts/soak.py --board esp32s3  # the boards' own faults too

It exits 1 when an event was lost or duplicated, a story is wrong, a device ran
out of heap or kept less than 10% free, and prints why. The test suite runs it
for half a minute (tests/test_soak.py)."""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hardware.sim.audit import settle_and_audit  # noqa: E402
from hardware.sim.faults import KINDS, Fault, Injector  # noqa: E402
from hardware.sim.town import Town  # noqa: E402

BOARD_ONLY = ("wifi_drop", "loop_stall")  # the ESP32-S3 boards' own faults
# The edge runs as its own process here (its memory is then its own, and it can
# be killed): the faults that reach into an edge in the simulator's process
# (its disk, its clock) are left to tests/faults.
IN_PROCESS_EDGE = ("edge_disk_full", "clock_jump")


def schedule(minutes: float, board: str, rng: random.Random) -> list[Fault]:
    """A fault every 20 s on average, of a kind the town can take, none in the
    last 20 s (the audit waits for what is in flight after the last)."""
    kinds = [k for k in KINDS if (board != "unix" or k not in BOARD_ONLY)
             and k not in IN_PROCESS_EDGE]
    end = max(6.0, minutes * 60 - 20)
    n = max(1, int(minutes * 3))
    return sorted((Fault(rng.uniform(5, end), rng.choice(kinds), rng.uniform(2, 8))
                   for _ in range(n)), key=lambda f: f.at)


def rss_kb(pid: int | None) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (OSError, TypeError):
        return None
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


def heap_k(size: str) -> int:
    return int(size.rstrip("K")) * 1024


async def soak(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    plan = schedule(args.minutes, args.board, rng)
    town = Town(args.dir, docks=args.docks, slots=6, mqtt_share=0.5, seed=args.seed,
                kiosks=args.kiosks, heartbeat_s=5, edge_process=True, board=args.board)
    lows: dict[str, int] = {}
    rss: list[tuple[float, int]] = []
    print(f"Soak: {args.docks} docks, {args.kiosks} kiosk(s), board {args.board}, "
          f"{args.minutes:g} min, {len(plan)} faults (seed {args.seed}), in {args.dir}",
          flush=True)
    async with town:
        await town.wait_online(60)
        t0 = time.monotonic()

        async def sample() -> None:
            while True:
                for d in await town.edge_api("devices"):
                    if isinstance(d.get("heap_low"), int):
                        lows[d["id"]] = min(lows.get(d["id"], 1 << 30), d["heap_low"])
                kb = rss_kb(town.edge_proc.pid if town.edge_proc else None)
                if kb is not None:
                    rss.append((time.monotonic() - t0, kb))
                await asyncio.sleep(max(2.0, args.minutes * 60 / 30))

        injector = Injector(town, args.seed)
        tasks = [asyncio.create_task(town.riders(), name="riders"),
                 asyncio.create_task(injector.run(plan), name="faults"),
                 asyncio.create_task(sample(), name="sample")]
        if town.kiosks:
            tasks.append(asyncio.create_task(town.villagers(), name="villagers"))
        await asyncio.sleep(args.minutes * 60)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for what in injector.done:
            print(f"  injected {what}")
        audit = await settle_and_audit(town, 90)
        print(audit.table())
        heaps = {d.dev: town.spec.dock_heap(d.link) for d in town.docks}
        heaps.update({k.dev: town.spec.kiosk_heap_for() for k in town.kiosks})
        logs = {d.dev: d.log_path for d in town.docks} | {k.dev: k.log_path for k in town.kiosks}
        ran_out = [dev for dev, log in logs.items()
                   if "MemoryError" in log.read_text(errors="replace")]
    thin = []
    print("Lowest free heap per device (as each reports it since its boot):")
    for dev in sorted(heaps):
        low, size = lows.get(dev), heaps[dev]
        pct = f"{100 * low / heap_k(size):.1f}%" if low is not None else "-"
        print(f"  {dev:<12} {low if low is not None else '-':>7} of {size:<4} {pct}")
        if low is not None and low < heap_k(size) // 10:
            thin.append(dev)
    if rss:
        kbs = [kb for _, kb in rss]
        series = "  ".join(f"{t:.0f}s:{kb / 1024:.0f}M" for t, kb in rss[::max(1, len(rss) // 10)])
        print(f"Edge RSS: start {kbs[0] / 1024:.1f} MB, highest {max(kbs) / 1024:.1f} MB, "
              f"end {kbs[-1] / 1024:.1f} MB ({len(kbs)} samples)\n  {series}")
    problems = []
    if not audit.ok() or audit.in_flight:
        problems.append("the audit: lost, duplicated, in flight or wrong stories (above)")
    if ran_out:
        problems.append(f"out of heap: {', '.join(ran_out)}")
    if thin:
        problems.append(f"under 10% free at their lowest: {', '.join(thin)}")
    print("Soak: " + ("; ".join(problems) if problems else "nothing lost, nothing wrong"))
    return 1 if problems else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0, help="how long (default 60)")
    ap.add_argument("--docks", type=int, default=6, help="docks, half on MQTT (default 6)")
    ap.add_argument("--kiosks", type=int, default=1, help="kiosks (default 1)")
    ap.add_argument("--board", default="unix", choices=("unix", "esp32s3"),
                    help="the devices' hal: unix, or the emulated ESP32-S3 boards")
    ap.add_argument("--seed", type=int, default=1, help="the faults' and the riders' seed")
    ap.add_argument("--dir", type=Path, help="the town's folder (default: a new temporary one)")
    args = ap.parse_args()
    if args.minutes <= 0:
        ap.error("--minutes must be more than 0")
    if args.dir is None:
        args.dir = Path(tempfile.mkdtemp(prefix="huimin-soak-"))
    args.dir = args.dir.resolve()
    try:
        return asyncio.run(soak(args))
    except KeyboardInterrupt:
        print("Soak: stopped by Ctrl-C")
        return 130


if __name__ == "__main__":
    sys.exit(main())
