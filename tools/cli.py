"""`huimin`: the technician's command line. Every tool is a subcommand."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from tools import console, county, diag, flash, fleet, ota, sim
from tools.credentials import add_edge_config_arg
from tools.firmware import BOARD_PORTS


def _until_signal(work: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run work(stop) in a new event loop; SIGINT/SIGTERM set `stop`."""
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await work(stop)

    asyncio.run(main())


def _edge(args: argparse.Namespace) -> int:
    from edge.runtime import Edge
    from tools.county import load_edge_config

    cfg = load_edge_config(args.config, "edge")
    if cfg is None:
        return 2

    _until_signal(Edge(cfg).run)
    return 0


def _backend(args: argparse.Namespace) -> int:
    from tools.credentials import CredentialError, secret
    from tools.devbackend import DevBackend

    keys: str | dict[str, str]
    try:
        if args.site_keys is not None:
            import tomllib

            from tools.credentials import read_secret_file

            keys = {str(k): str(v) for k, v in
                    tomllib.loads(read_secret_file(args.site_keys)).items()}
        else:
            keys = secret("webhook HMAC key", "HUIMIN_WEBHOOK_SECRET", args.secret_file)
    except (CredentialError, ValueError) as exc:
        print(f"huimin backend: {getattr(exc, 'code', exc)}", file=sys.stderr)
        return 2
    if any(len(k) < 16 for k in (keys.values() if isinstance(keys, dict) else [keys])):
        print("huimin backend: every key must be at least 16 characters", file=sys.stderr)
        return 2
    if isinstance(keys, str):
        logging.getLogger("backend").warning(
            "one key for every site: any edge could act for another (give --site-keys)")

    async def work(stop: asyncio.Event) -> None:
        backend = DevBackend(args.db, keys)
        url = await backend.start(args.host, args.port)
        from edge.adapters.device_keys import write_private

        token_file = args.db.with_name(args.db.name + ".operator-token")
        write_private(token_file, backend.operator_token + "\n")
        print(f"Backend: {url}/  (webhook {url}/webhook; the operator's token for "
              f"POST /api/rentals and /api/funds is in {token_file}, mode 0600)", flush=True)
        await stop.wait()
        await backend.stop()

    _until_signal(work)
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
    add_edge_config_arg(p)
    p.set_defaults(func=_edge)
    p = sub.add_parser("backend", help="run the development city backend",
                       description="A small real stand-in for the city-service backend: "
                       "receives the edge's signed webhook, stores it in SQLite, serves a "
                       "city-wide view and a JSON API, issues rentals (docs/bridge.md).")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9000, help="listen port (default 9000)")
    p.add_argument("--db", type=Path, default=Path("backend.db"), help="SQLite file")
    p.add_argument("--site-keys", type=Path, help="each site's key: a TOML file of mode 0600 "
                   "with lines like anji = \"<key>\"")
    p.add_argument("--secret-file", type=Path, help="one key for every site (development), "
                   "in a file of mode 0600 (or $HUIMIN_WEBHOOK_SECRET; never on the command "
                   "line)")
    p.set_defaults(func=_backend)
    p = sub.add_parser("build", help="cross-compile the firmware for a board",
                       description="Build the device image (.mpy files, board pin map) into "
                       "build/firmware/BOARD.")
    p.add_argument("--board", default="unix", choices=sorted(BOARD_PORTS),
                   help="board to build for (default unix; hardware/boards/ has their pin maps)")
    p.set_defaults(func=_build)
    flash.add_parsers(sub)
    county.add_parsers(sub)
    fleet.add_parser(sub)
    console.add_parser(sub)
    diag.add_parser(sub)
    ota.add_parser(sub)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
