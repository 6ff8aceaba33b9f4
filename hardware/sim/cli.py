"""The simulator's commands: `huimin sim` (a simulated town until Ctrl-C) and
`huimin backend` (the development city backend on its own). The technician
CLI (tools/cli.py) reaches the simulator only through add_parsers()."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from edge.adapters.device_keys import write_private
from hardware.sim.audit import settle_and_audit, settle_and_audit_city
from hardware.sim.city import City
from hardware.sim.city_tier import nats_server_path
from hardware.sim.faults import KINDS, Injector, load
from hardware.sim.spec import KIOSK_HEAP, KIOSK_MQTT_HEAP
from hardware.sim.town import Town
from tools.signals import run_until_signal


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _add_sim(sub)
    _add_city(sub)
    p = sub.add_parser("backend", help="run the development city backend",
                       description="A small real stand-in for the city-service backend: "
                       "receives the edge's signed webhook, stores it in SQLite, serves a "
                       "city-wide view and a JSON API, issues rentals (docs/bridge.md).")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=tcp_port, default=9000, help="listen port (default 9000)")
    p.add_argument("--db", type=Path, default=Path("backend.db"), help="SQLite file")
    p.add_argument("--site-keys", type=Path, help="each site's key: a TOML file of mode 0600 "
                   "with lines like anji = \"<key>\"")
    p.add_argument("--secret-file", type=Path, help="one key for every site (development), "
                   "in a file of mode 0600 (or $HUIMIN_WEBHOOK_SECRET; never on the command "
                   "line)")
    p.set_defaults(func=_backend)


def sim_update_key(private: Path) -> str:
    """The town's update key (made once, kept across runs, mode 0600): its devices
    trust it, so `huimin ota build --key` and `ota push` work on the town as on a
    county's devices. Returns the public key's hex."""
    from tools.firmware import keygen, public_key_hex

    private.parent.mkdir(parents=True, exist_ok=True)
    return public_key_hex(private) if private.exists() else keygen(private)


def tcp_port(text: str) -> int:
    """An argparse type: a TCP port number, 0 for any free one."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535; 0 = any free one)")
    return port


def _add_sim(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sim", help="run a simulated town (docks under MicroPython, edge, GBFS)",
                       description="Start a private MQTT broker, the edge service and N bike "
                       "docks whose firmware runs under the MicroPython unix port with emulated "
                       "slots, locks and tag readers; random riders rent and return bikes. "
                       "Runs until Ctrl-C.")
    p.add_argument("--docks", type=int, default=6, help="number of docks/stations (default 6)")
    p.add_argument("--slots", type=int, default=12, help="slots per dock (default 12)")
    p.add_argument("--kiosks", type=int, default=1,
                   help="ID-card kiosks with scripted villagers (default 1)")
    p.add_argument("--kiosk-link", choices=("serial", "mqtt"), default=None,
                   help=f"how kiosks reach the edge: a serial line ({KIOSK_HEAP} heap) or "
                   f"MQTT over TLS ({KIOSK_MQTT_HEAP} heap) (default serial; mqtt with "
                   "--board esp32s3)")
    p.add_argument("--port", type=tcp_port, default=8080,
                   help="edge HTTP port (default 8080; 0 = any)")
    p.add_argument("--mqtt-share", type=float, default=0.5,
                   help="share of docks on MQTT, the rest on serial lines (default 0.5)")
    p.add_argument("--dir", type=Path, default=Path(".sim"),
                   help="working folder for device flash, logs and the journal (default .sim)")
    p.add_argument("--seed", type=int, default=None, help="random seed for a repeatable town")
    p.add_argument("--no-riders", action="store_true", help="no simulated riders")
    p.add_argument("--duration", type=float, default=0,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--faults", metavar="SCHEDULE",
                   help="inject faults: a preset (each: every kind once, 20 s apart; random: "
                   "12 at random, from --seed) or a TOML file of [[fault]] at/kind/for/target "
                   f"(kinds: {', '.join(KINDS)}); an audit of every rent/return is printed "
                   "at the end")
    p.add_argument("--edge-process", action="store_true",
                   help="run the edge as its own process, as on a Pi (the faults' edge_kill "
                   "needs it; on by itself when the schedule has one)")
    p.add_argument("--board", choices=("unix", "esp32s3"), default="unix",
                   help="what the devices' firmware runs on: the simulator's port (unix) or "
                   "the ESP32-S3 board's own hal on its emulated chip (docks with 12 slots on "
                   "MCP23017 expanders, kiosks on Wi-Fi; needs --kiosk-link mqtt) "
                   "(default unix)")
    p.add_argument("--bench", action="store_true",
                   help="also a new dock board on a technician's bench, its console on a "
                   "pseudo-terminal (DIR/bench/tty): practise huimin flash, provision, console "
                   "and diag on it; the lines to paste are printed")
    p.set_defaults(func=run)


def _add_city(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("city", help="run a simulated city: N sites through a NATS cluster",
                       description="Start the city tier (a 3-node NATS cluster with "
                       "JetStream, TLS and an account per site), the city backend, and N "
                       "sites, each a town with its own docks (firmware under MicroPython), "
                       "broker, database and edge; riders rent through the backend and each "
                       "rental flows down to its site. Runs until Ctrl-C (docs/scaling.md).")
    p.add_argument("--sites", type=int, default=3, help="number of sites (default 3)")
    p.add_argument("--docks", type=int, default=3, help="docks per site (default 3)")
    p.add_argument("--slots", type=int, default=12, help="slots per dock (default 12)")
    p.add_argument("--port", type=tcp_port, default=9000,
                   help="the city backend's HTTP port (default 9000; 0 = any)")
    p.add_argument("--dir", type=Path, default=Path(".city"),
                   help="working folder: the tier's nodes, the backend, a folder per site "
                   "(default .city)")
    p.add_argument("--seed", type=int, default=None, help="random seed for a repeatable city")
    p.add_argument("--no-riders", action="store_true", help="no simulated riders")
    p.add_argument("--duration", type=float, default=0,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--edges-here", action="store_true",
                   help="run every site's edge in this process (default: each its own "
                   "process, as each site's Pi)")
    p.add_argument("--kill-node-at", type=float, default=0, metavar="S",
                   help="kill one of the tier's nodes S seconds in (and restart it 20 s "
                   "later): the audit at the end shows what that cost")
    p.add_argument("--cut-uplink-at", type=float, default=0, metavar="S",
                   help="cut the first site's uplink to the tier S seconds in, for "
                   "--cut-for seconds (its events wait in its outbox)")
    p.add_argument("--cut-for", type=float, default=120, metavar="S",
                   help="how long the uplink stays cut (default 120)")
    p.set_defaults(func=run_city)


def run_city(args: argparse.Namespace) -> int:
    if not 1 <= args.sites <= 20 or not 1 <= args.docks <= 50 or not 1 <= args.slots <= 32:
        raise SystemExit("huimin city: --sites must be 1..20, --docks 1..50, --slots 1..32")
    return _run("city", _city_main(args), args.port)


async def _city_main(args: argparse.Namespace) -> int:
    if nats_server_path() is None:
        raise SystemExit("huimin city: nats-server is not installed (Debian: "
                         "apt install nats-server; ./run-tests installs it)")
    stop = _stop_on_signals()
    print(f"Starting a city of {args.sites} sites x {args.docks} docks, through a 3-node "
          "NATS cluster...", flush=True)
    city = City(args.dir.resolve(), sites=args.sites, backend_port=args.port, docks=args.docks,
                slots=args.slots, seed=args.seed,
                edge_process=not args.edges_here)
    async with city:
        try:
            await city.wait_online(60)
        except TimeoutError:
            logging.getLogger("sim").warning("not every dock came online; see "
                                             "%s/<site>/devices/*/console.log", args.dir)
        assert city.tier is not None
        print(f"City tier: {', '.join(city.tier.urls)} (TLS, CA {city.tier.ca}; nodes' logs "
              f"in {args.dir}/city-tier/city-*/nats.log)")
        assert city.backend is not None
        token_file = args.dir.resolve() / "operator-token"
        write_private(token_file, city.backend.operator_token + "\n")
        print(f"City backend: {city.backend_url}/  (API {city.backend_url}/api/stations; "
              f"{city.backend_url}/api/events with the operator's token, {token_file})")
        print(f"City GBFS manifest: {city.backend_url}/gbfs/manifest.json")
        for t in city.towns:
            base = f"http://127.0.0.1:{t.http_port}"
            print(f"Site {t.spec.site}: {base}/  GBFS {base}/gbfs/3.0/gbfs.json  "
                  f"({len(t.docks)} docks; edge log {args.dir}/{t.spec.site}/edge.log)")
        print("Press Ctrl-C to stop.", flush=True)
        riders = None if args.no_riders else asyncio.create_task(city.riders(), name="riders")
        chaos = asyncio.create_task(_kill_a_node(city, args.kill_node_at), name="node-kill") \
            if args.kill_node_at else None
        cut = asyncio.create_task(_cut_uplink(city, args.cut_uplink_at, args.cut_for),
                                  name="uplink-cut") if args.cut_uplink_at else None
        try:
            async with asyncio.timeout(args.duration or None):
                await stop.wait()
        except TimeoutError:
            pass
        for task in (riders, chaos, cut):
            if task is not None:
                task.cancel()
        audit = await settle_and_audit_city(city)
        print(audit.table(), flush=True)
        print("Stopping...", flush=True)
    print("Stopped.")
    return 0


async def _kill_a_node(city: City, at_s: float) -> None:
    assert city.tier is not None
    await asyncio.sleep(at_s)
    node = city.tier.nodes[0]
    print(f"Killing {node.name} (SIGKILL); it comes back in 20 s", flush=True)
    await city.tier.kill(node)
    await asyncio.sleep(20)
    await city.tier.restart(node)


async def _cut_uplink(city: City, at_s: float, for_s: float) -> None:
    site = city.site_ids[0]
    await asyncio.sleep(at_s)
    print(f"Cutting {site}'s uplink to the city tier for {for_s:.0f} s", flush=True)
    city.cut(site)
    try:
        await asyncio.sleep(for_s)
    finally:
        city.cut(site, False)
        print(f"{site}'s uplink is back", flush=True)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.docks <= 200 or not 1 <= args.slots <= 32 or not 0 <= args.kiosks <= 20:
        raise SystemExit("huimin sim: --docks must be 1..200, --slots 1..32, --kiosks 0..20")
    if args.kiosk_link is None:
        args.kiosk_link = "mqtt" if args.board == "esp32s3" else "serial"
    if args.board == "esp32s3" and args.kiosk_link == "serial" and args.kiosks:
        raise SystemExit("huimin sim: a kiosk on the ESP32-S3 board reaches the edge by Wi-Fi: "
                         "use --kiosk-link mqtt (or --kiosks 0)")
    if args.board == "esp32s3" and args.slots > 12:
        raise SystemExit("huimin sim: the ESP32-S3 dock board has 12 slots: use --slots 12 or "
                         "fewer")
    return _run("sim", _main(args), args.port)


def _run(command: str, main: Coroutine[Any, Any, int], port: int) -> int:
    """The command's loop; a port in use is a clear message, not a traceback."""
    try:
        return asyncio.run(main)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SystemExit(f"huimin {command}: port {port} is in use; "
                             "pick another with --port (0 = any free port)") from exc
        raise


def _stop_on_signals() -> asyncio.Event:
    """Set on Ctrl-C or SIGTERM: the command then stops its parts in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _main(args: argparse.Namespace) -> int:
    log = logging.getLogger("sim")
    stop = _stop_on_signals()
    schedule = load(args.faults, args.seed) if args.faults else []
    edge_process = args.edge_process or any(f.kind == "edge_kill" for f in schedule)
    ota_key = args.dir / "ota-key.pem"
    town = Town(args.dir.resolve(), docks=args.docks, slots=args.slots,
                mqtt_share=args.mqtt_share, http_port=args.port, seed=args.seed,
                kiosks=args.kiosks, kiosk_link=args.kiosk_link, edge_process=edge_process,
                board=args.board, ota_key=sim_update_key(ota_key), bench=args.bench)
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
        print(f"Technician dashboard: {base}/fleet")
        if town.backend_url:
            print(f"Backend: {town.backend_url}/")
        print(f"GBFS: {base}/gbfs/3.0/gbfs.json")
        print(f"GBFS 2.3: {base}/gbfs/2.3/gbfs.json")
        print(f"API: {base}/api/stations")
        if town.kiosks:
            print(f"Kiosks: {len(town.kiosks)} on {town.kiosks[0].link} with scripted villagers; "
                  f"their screens, live: {base}/fleet (sign in with the technician token)")
        print(f"Logs: {args.dir}/devices/<device>/console.log")
        print(f"Technician token: {args.dir}/technician-token (huimin ota push --token-file)")
        print(f"Updates: the devices trust the town's update key {ota_key}; try\n"
              f"  huimin ota build --key {ota_key} --version 0.1.1 --board {args.board} "
              f"--out {args.dir}/update-0.1.1\n"
              f"  huimin ota push {args.dir}/update-0.1.1 {town.docks[0].dev} --edge {base} "
              f"--token-file {args.dir}/technician-token"
              + ("\n  (a kiosk's image: --board esp32s3-kiosk)" if args.board != "unix" else ""))
        if town.bench is not None:
            print(f"A new board on the bench, blank, its console on {town.bench.tty} (flash, "
                  f"provision as {town.bench.dev}, watch it come up, check it):\n  "
                  + "\n  ".join(town.bench.practice(town.spec.site, base,
                                                    args.dir / "technician-token",
                                                    town.spec.ota_key)))
        print("Press Ctrl-C to stop.", flush=True)
        riders = None if args.no_riders else asyncio.create_task(town.riders(), name="riders")
        villagers = asyncio.create_task(town.villagers(), name="villagers") if town.kiosks \
            else None
        injector = Injector(town, args.seed)
        faults = asyncio.create_task(injector.run(schedule), name="faults") if schedule else None
        if schedule:
            print(f"Faults: {len(schedule)} scheduled ({args.faults}); the audit follows the "
                  "end", flush=True)
        try:
            if args.duration:
                async with asyncio.timeout(args.duration):
                    await stop.wait()
            else:
                await stop.wait()
        except TimeoutError:
            pass
        for t in (riders, villagers, faults):
            if t is not None:
                t.cancel()
        if schedule:
            for what in injector.done:
                print(f"  injected {what}")
            print((await settle_and_audit(town)).table(), flush=True)
        print("Stopping...", flush=True)
    print("Stopped.")
    return 0


def _backend(args: argparse.Namespace) -> int:
    from hardware.sim.backend import DevBackend
    from tools.credentials import CredentialError, secret

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
        token_file = args.db.with_name(args.db.name + ".operator-token")
        write_private(token_file, backend.operator_token + "\n")
        print(f"Backend: {url}/  (webhook {url}/webhook; the operator's token for "
              f"POST /api/rentals and /api/funds is in {token_file}, mode 0600)", flush=True)
        await stop.wait()
        await backend.stop()

    run_until_signal(work)
    return 0
