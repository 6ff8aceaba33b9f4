"""`huimin sim`: run a simulated town until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
from pathlib import Path

from tools.town import KIOSK_HEAP, KIOSK_MQTT_HEAP, Town


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sim", help="run a simulated town (docks under MicroPython, edge, GBFS)",
                       description="Start a private MQTT broker, the edge service and N bike "
                       "docks whose firmware runs under the MicroPython unix port with emulated "
                       "slots, locks and tag readers; random riders rent and return bikes. "
                       "Runs until Ctrl-C.")
    p.add_argument("--docks", type=int, default=6, help="number of docks/stations (default 6)")
    p.add_argument("--slots", type=int, default=12, help="slots per dock (default 12)")
    p.add_argument("--kiosks", type=int, default=1,
                   help="ID-card kiosks with scripted villagers (default 1)")
    p.add_argument("--kiosk-link", choices=("serial", "mqtt"), default="serial",
                   help=f"how kiosks reach the edge: a serial line ({KIOSK_HEAP} heap) or "
                   f"MQTT over TLS ({KIOSK_MQTT_HEAP} heap) (default serial)")
    p.add_argument("--port", type=int, default=8080, help="edge HTTP port (default 8080; 0 = any)")
    p.add_argument("--mqtt-share", type=float, default=0.5,
                   help="share of docks on MQTT, the rest on serial lines (default 0.5)")
    p.add_argument("--dir", type=Path, default=Path(".sim"),
                   help="working folder for device flash, logs and the journal (default .sim)")
    p.add_argument("--seed", type=int, default=None, help="random seed for a repeatable town")
    p.add_argument("--no-riders", action="store_true", help="no simulated riders")
    p.add_argument("--duration", type=float, default=0,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.docks <= 200 or not 1 <= args.slots <= 32 or not 0 <= args.kiosks <= 20:
        raise SystemExit("huimin sim: --docks must be 1..200, --slots 1..32, --kiosks 0..20")
    try:
        return asyncio.run(_main(args))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SystemExit(f"huimin sim: port {args.port} is in use; "
                             "pick another with --port (0 = any free port)") from exc
        raise


async def _main(args: argparse.Namespace) -> int:
    log = logging.getLogger("sim")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    town = Town(args.dir.resolve(), docks=args.docks, slots=args.slots,
                mqtt_share=args.mqtt_share, http_port=args.port, seed=args.seed,
                kiosks=args.kiosks, kiosk_link=args.kiosk_link)
    print(f"Starting a town of {args.docks} docks x {args.slots} slots "
          "(firmware under MicroPython)...", flush=True)
    async with town:
        try:
            await town.wait_online(30)
        except TimeoutError:
            log.warning("not every dock came online; see %s/devices/*/console.log", args.dir)
        base = f"http://127.0.0.1:{town.http_port}"
        n_serial = sum(1 for d in town.docks if d.link == "serial")
        print(f"Docks: {n_serial} on serial lines, {len(town.docks) - n_serial} on MQTT"
              + (f" (mqtts://127.0.0.1:{town.broker.tls_port}, TLS with the county CA in "
                 f"{args.dir}/ca; accounts and ACL in {args.dir}/broker)" if town.broker
                 else " (no Mosquitto installed)"))
        print(f"Status: {base}/")
        if town.backend_url:
            print(f"Backend: {town.backend_url}/")
        print(f"GBFS: {base}/gbfs/3.0/gbfs.json")
        print(f"GBFS 2.3: {base}/gbfs/2.3/gbfs.json")
        print(f"API: {base}/api/stations")
        if town.kiosks:
            print(f"Kiosks: {len(town.kiosks)} on {town.kiosks[0].link} with scripted villagers "
                  "(screens in the log)")
        print(f"Logs: {args.dir}/devices/<device>/console.log")
        print(f"Technician token: {args.dir}/technician-token (huimin ota push --token-file)")
        print("Press Ctrl-C to stop.", flush=True)
        riders = None if args.no_riders else asyncio.create_task(town.riders(), name="riders")
        villagers = asyncio.create_task(town.villagers(), name="villagers") if town.kiosks \
            else None
        try:
            if args.duration:
                async with asyncio.timeout(args.duration):
                    await stop.wait()
            else:
                await stop.wait()
        except TimeoutError:
            pass
        for t in (riders, villagers):
            if t is not None:
                t.cancel()
        print("Stopping...", flush=True)
    print("Stopped.")
    return 0
