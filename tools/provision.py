"""`huimin provision`: a device's identity and keys. It makes the device's
command key (and, on MQTT, its broker account), tells the edge (over its
authenticated API, or in its device-keys file when run on the edge), writes
config.json on the device over its serial REPL, and resets it."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tools.credentials import add_token_arg, edge_url
from tools.flash import FlashError, connect, leave, reset


def device_config(dev: str, kind: str, site: str, link: str, slots: int, uart: str,
                  mqtt: dict[str, Any] | None, region_key: str, ota_key: str,
                  extra: dict[str, Any], cmd_key: str = "") -> dict[str, Any]:
    cfg: dict[str, Any] = {"dev": dev, "kind": kind, "site": site, "link": link, "uart": uart,
                           "cmd_key": cmd_key or secrets.token_hex(32)}
    if kind == "dock":
        cfg["slots"] = slots
    if kind == "kiosk":
        if len(region_key) < 32:
            raise FlashError("a kiosk needs its region key (--region-key-file or "
                             "$HUIMIN_REGION_KEY: at least 16 bytes, hex)")
        cfg["region_key"] = region_key
    if mqtt:
        cfg["mqtt"] = mqtt
    if ota_key:
        bytes.fromhex(ota_key)
        if len(ota_key) != 64:
            raise FlashError("--ota-key is the 32-byte Ed25519 public key, 64 hex characters")
        cfg["ota_key"] = ota_key
    cfg.update(extra)
    return cfg


def provision(port: str, cfg: dict[str, Any], files: dict[str, bytes] | None = None) -> None:
    """Write config.json (and `files`, e.g. the county CA as ca.der) to the
    device, and read them back."""
    t = connect(port)
    step = "writing its files"
    try:
        for name, data in (files or {}).items():
            step = f"writing {name}"
            t.fs_writefile(name, data)
            if bytes(t.fs_readfile(name)) != data:
                raise FlashError(f"{name} on the device does not read back as written")
        step = "writing config.json"
        t.fs_writefile("config.json", json.dumps(cfg).encode())
        back = json.loads(bytes(t.fs_readfile("config.json")))
        if back != cfg:
            raise FlashError("config.json on the device does not read back as written")
        # A new command key makes every command ever recorded invalid, so the counter
        # starts over (and a damaged counter file, which refuses commands, is mended).
        step = "clearing its command counter"
        if t.fs_exists("cmd_ctr"):
            t.fs_rmfile("cmd_ctr")
    except OSError as exc:
        raise FlashError(f"the device on {port} stopped answering while {step} ({exc}): is "
                         "its cable in, did it reset? Run provision again: it starts over") \
            from None
    finally:
        leave(t)


def board_slots(port: str) -> int | None:
    """How many slots the board file of the image on the device has (None: no
    image, or a board without slots): a dock's --slots comes from it."""
    from mpremote.transport import TransportError

    t = connect(port)
    try:
        try:
            active = bytes(t.fs_readfile("boot_record")).split()[0].decode()
        except (TransportError, OSError, IndexError, UnicodeDecodeError):
            active = "a"
        try:
            board = json.loads(bytes(t.fs_readfile(f"slot_{active}/board.json")))
        except (TransportError, OSError, ValueError):
            return None
    finally:
        leave(t)
    locks = board.get("slots", {}).get("lock", []) if isinstance(board, dict) else []
    return len(locks) or None


def dock_slots(port: str, asked: int | None) -> int:
    """The dock's slot count: as asked, or all its board's; more than the board
    has is refused before anything is registered or written."""
    have = board_slots(port)
    if have is None:
        raise FlashError(f"the device on {port} has no firmware image: run huimin flash first")
    if asked is None:
        return have
    if not 1 <= asked <= have:
        raise FlashError(f"--slots {asked}: this board has {have} slots (its board file); "
                         f"give 1 to {have}, or leave --slots out for all {have}")
    return asked


def register(edge: str, dev: str, station: str, kind: str, command_key: str,
             mqtt_password_hash: str | None, token: str, replace: bool = False
             ) -> dict[str, Any]:
    """Tell the edge the device, its command key and (MQTT) its broker
    password's hash, over the edge's authenticated API."""
    payload: dict[str, Any] = {"id": dev, "station": station, "kind": kind,
                               "command_key": command_key}
    if mqtt_password_hash:
        payload["mqtt_password"] = mqtt_password_hash
    if replace:
        payload["replace"] = True
    req = urllib.request.Request(f"{edge}/api/devices", data=json.dumps(payload).encode(),
                                 method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            res: dict[str, Any] = json.loads(r.read())
            return res
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        detail = body.get("detail") or body.get("error") or exc.reason
        raise FlashError(f"the edge refused the registration ({exc.code}): {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FlashError(f"cannot reach the edge at {edge}: {exc}") from None


# -- CLI ----------------------------------------------------------------------
def _provision_cmd(args: argparse.Namespace) -> int:
    from edge.adapters.device_keys import DeviceKeys
    from tools.broker import new_password, password_hash
    from tools.credentials import CredentialError, edge_token, secret

    try:
        if not args.edge and not args.keys_file:
            raise FlashError("give --edge URL (register over its API) or --keys-file (the "
                             "edge's device-keys file, when run on the edge itself)")
        token = edge_token(args.token_file) if args.edge else ""
        mqtt = None
        files: dict[str, bytes] = {}
        mqtt_hash = None
        if args.mqtt_host:
            if args.ca is None:
                raise FlashError("a device on MQTT needs --ca (the county CA's ca.der, from "
                                 "huimin ca): it verifies the broker with it")
            files["ca.der"] = args.ca.read_bytes()
            mqtt_password = new_password()  # made here, written to the device, never shown
            mqtt_hash = password_hash(mqtt_password)
            mqtt = {"host": args.mqtt_host, "port": args.mqtt_port, "user": args.dev,
                    "password": mqtt_password, "ca": "ca.der"}
        extra: dict[str, Any] = {}
        if args.wifi_ssid:
            if not mqtt:
                raise FlashError("--wifi-ssid is for a device on MQTT: give --mqtt-host too")
            extra["wifi"] = {"ssid": args.wifi_ssid,
                             "password": secret("Wi-Fi password", "HUIMIN_WIFI_PASSWORD",
                                                args.wifi_password_file)}
        region_key = ""
        if args.kind == "kiosk":
            region_key = secret("region key (hex)", "HUIMIN_REGION_KEY", args.region_key_file)
            if args.help_line:
                extra["help"] = args.help_line
        elif args.help_line:
            raise FlashError("--help-line is what a kiosk's screen says where to ask: "
                             "give --kind kiosk")
        slots = dock_slots(args.port, args.slots) if args.kind == "dock" else 0
        cfg = device_config(args.dev, args.kind, args.site, "mqtt" if mqtt else "serial",
                            slots, args.uart, mqtt, region_key, args.ota_key or "", extra)
        # The edge learns the key first: a device it cannot command is no use.
        if args.edge:
            register(args.edge, args.dev, args.station, args.kind, cfg["cmd_key"], mqtt_hash,
                     token, replace=args.replace)
        else:
            extra_keys = {"mqtt_password": mqtt_hash} if mqtt_hash else {}
            DeviceKeys(args.keys_file).add(args.dev, cfg["cmd_key"], **extra_keys)
        provision(args.port, cfg, files)
        if not args.no_reset:
            reset(args.port)
    except (FlashError, ValueError, OSError) as exc:
        print(f"huimin provision: {exc}", file=sys.stderr)
        return 1
    except CredentialError as exc:
        print(f"huimin provision: {exc.code}", file=sys.stderr)
        return 1
    print(f"{args.port}: {args.dev} provisioned: {json.dumps(_shown(cfg), ensure_ascii=False)}")
    if args.edge:
        print(f"registered with the edge at {args.edge} (station {args.station}), with its "
              "command key" + (" and broker account" if mqtt else ""))
    else:
        print(f"its command key is in {args.keys_file}")
    if mqtt:
        print("its broker account is new: run `huimin broker` on the edge and reload "
              "Mosquitto (docs/deploy.md)")
    if not args.no_reset:
        print("Reset: the device starts with its identity; `huimin console --port "
              f"{args.port}` shows it come up.")
    return 0


SECRET_KEYS = ("cmd_key", "region_key", "password")


def _shown(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config with every secret as "*": what a technician may see."""
    return {k: "*" if k in SECRET_KEYS else _shown(v) if isinstance(v, dict) else v
            for k, v in cfg.items()}


def add_parser(sub: Any) -> None:
    q = sub.add_parser("provision", help="give a device its identity and keys",
                       description="Make the device's command key (and, on MQTT, its broker "
                       "account), register both with the edge over its authenticated API, "
                       "write config.json on the device (id, site, kind, slots, link, keys, "
                       "the county CA, update key), and reset it so it starts with them. "
                       "Secrets never go on this command line: the technician token, Wi-Fi "
                       "password and region key come from a file (mode 0600), an environment "
                       "variable or a prompt; none is printed.")
    q.add_argument("--port", required=True, help="the device's serial port")
    q.add_argument("--dev", required=True, help="device id, e.g. dock-014")
    q.add_argument("--kind", choices=("dock", "kiosk"), default="dock")
    q.add_argument("--site", default="town", help="site (town) name, as in the edge's config")
    q.add_argument("--station", default="", help="station the device belongs to (edge)")
    q.add_argument("--slots", type=int,
                   help="a dock's slots in use (default: all its board file has, e.g. 12 on "
                   "the ESP32-S3 dock board; more is refused)")
    q.add_argument("--uart", default="edge",
                   help="the device's serial line to the edge (serial link): on a board, "
                   "the board file's name for it (default edge: the dock board's RS-485); on "
                   "the simulator's unix port, a pseudo-terminal's path")
    q.add_argument("--mqtt-host", help="MQTT broker: the device uses MQTT (TLS), not serial")
    q.add_argument("--mqtt-port", type=int, default=8883, help="the broker's TLS port (8883)")
    q.add_argument("--ca", type=Path, help="the county CA certificate, ca.der (huimin ca)")
    q.add_argument("--wifi-ssid", help="Wi-Fi network for a board on MQTT (ESP32-S3); the "
                   "password from --wifi-password-file, $HUIMIN_WIFI_PASSWORD or a prompt")
    q.add_argument("--wifi-password-file", type=Path)
    q.add_argument("--region-key-file", type=Path, help="a kiosk's lookup-token key (hex) "
                   "from the region, in a file of mode 0600 (or $HUIMIN_REGION_KEY)")
    q.add_argument("--ota-key", help="the update key's public half (huimin ota keygen)")
    q.add_argument("--help-line", metavar="TEXT",
                   help="a kiosk's next step when it cannot help (no records, a bad card): "
                   "the village committee's office and phone, e.g. "
                   "'如有疑问，请到村委会或拨打0855-1234567' (default: the village committee "
                   "or 12345)")
    q.add_argument("--edge", type=edge_url, help="edge URL to register the device with, e.g. "
                   "http://127.0.0.1:8080 (through an SSH tunnel to the Pi)")
    add_token_arg(q)
    q.add_argument("--keys-file", type=Path, help="instead of --edge, on the edge itself: its "
                   "device-keys file")
    q.add_argument("--replace", action="store_true",
                   help="the edge has this device already: give it new keys (re-provisioning; "
                   "the old ones stop working)")
    q.add_argument("--no-reset", action="store_true",
                   help="leave the device in its REPL (e.g. to run `huimin diag` next)")
    q.set_defaults(func=_provision_cmd)

