"""`huimin`: the technician's command line. Every tool is a subcommand."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from tools import sim


def _edge(args: argparse.Namespace) -> int:
    from edge import config
    from edge.errors import ConfigError
    from edge.service import EdgeService

    try:
        cfg = config.load(args.config)
    except ConfigError as exc:
        print(f"huimin edge: bad configuration: {exc}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await EdgeService(cfg).run(stop)

    asyncio.run(main())
    return 0


def _build(args: argparse.Namespace) -> int:
    from tools.firmware import build

    out = build(args.board)
    print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="huimin", description="Bike docks and ID-card kiosks: "
                                 "simulator, edge service and technician tools.")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sim.add_parser(sub)
    p = sub.add_parser("edge", help="run the edge service", description="Run the edge service "
                       "(serial + MQTT transports, journal, GBFS, API) from a TOML configuration.")
    p.add_argument("--config", type=Path, default=Path("/etc/huimin/edge.toml"),
                   help="configuration file (default /etc/huimin/edge.toml)")
    p.set_defaults(func=_edge)
    p = sub.add_parser("build", help="cross-compile the firmware for a board",
                       description="Build the device image (.mpy files, board pin map) into "
                       "build/firmware/BOARD.")
    p.add_argument("--board", default="unix", help="unix or esp32s3 (default unix)")
    p.set_defaults(func=_build)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
