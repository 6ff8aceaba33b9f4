"""`huimin flash` and `huimin provision`: a device's image and identity, over
its serial REPL with mpremote's transport (raw REPL; `resume`, so the unix
port's REPL is not soft-reset, which would end it).

flash lays the image out as the bootloader expects (docs/ota.md): main.py and
bootloader/ at the top, the image in slot_a/, then the boot record, written
last, so a device whose cable was pulled mid-flash is never taken for done.
Each file goes to `<name>.part` and is renamed once its SHA-256 on the device
matches; files already there with the right hash are skipped, so running
flash again resumes where the cable was pulled. A provisioned device is then
reset to boot the new image (`--no-reset` leaves it in its REPL); a new one is
left for `provision`, which resets it once it has its identity."""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tools.credentials import add_token_arg
from tools.firmware import BOARD_PORTS, BuildError, build, read_manifest
from tools.progress import Bar

RECORD = "a - 0 0 flashed"  # the boot record flash leaves (bootloader/slot.py)


class FlashError(RuntimeError):
    """A clear, technician-facing reason; the CLI prints it and exits 1."""


def _connect(port: str, timeout_s: float = 5.0) -> Any:
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    if not Path(port).exists() and not port.startswith(("COM", "socket://", "rfc2217://")):
        raise FlashError(f"no such port: {port} (is the USB cable in? `ls /dev/ttyUSB* "
                         "/dev/ttyACM*` lists what is there)")
    try:
        t = SerialTransport(port, baudrate=115200)
    except TransportError as exc:
        raise FlashError(f"cannot open {port}: {exc}") from None
    try:
        t.enter_raw_repl(soft_reset=False, timeout_overall=timeout_s)
    except (TransportError, OSError) as exc:
        t.close()
        raise FlashError(f"the device on {port} does not answer its REPL ({exc}); "
                         "is MicroPython on it? (--erase --base-image installs it)") from None
    return t


def _device_sha256(t: Any, path: str) -> str | None:
    from mpremote.transport import TransportError

    try:
        if not t.fs_exists(path):
            return None
        return bytes(t.fs_hashfile(path, "sha256")).hex()
    except TransportError:
        return None


def _mkdirs(t: Any, path: str, made: set[str]) -> None:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d not in made:
            if not t.fs_exists(d):
                t.fs_mkdir(d)
            made.add(d)


def plan(image: Path) -> list[tuple[Path, str, str]]:
    """(local file, path on the device, sha256) for everything flash writes."""
    man = read_manifest(image)
    out = [(image / "main.py", "main.py", man["files"]["main.py"])]
    for rel, sha in man["files"].items():
        if rel.startswith("bootloader/"):
            out.append((image / rel, rel, sha))
    for rel, sha in man["files"].items():
        out.append((image / rel, f"slot_a/{rel}", sha))
    for rel in ("manifest.json", "manifest.sig"):
        if (image / rel).exists():
            data = (image / rel).read_bytes()
            out.append((image / rel, f"slot_a/{rel}", _sha(data)))
    return out


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def erase(t: Any) -> int:
    """Remove everything on the device's filesystem; returns how many entries."""
    n = t.eval("len(__import__('os').listdir())")
    t.exec("import os\n"
           "def _rm(p):\n"
           " try:\n"
           "  os.remove(p)\n"
           " except OSError:\n"
           "  for q in os.listdir(p):\n"
           "   _rm(p + '/' + q)\n"
           "  os.rmdir(p)\n"
           "for q in os.listdir():\n"
           " _rm(q)\n")
    return int(n)


def flash(port: str, image: Path, erase_first: bool = False, out: Any = None,
          chunk: int = 1024, after_file: Any = None) -> dict[str, int]:
    """Copy and verify the image; returns counts (written, skipped).
    after_file(n_written) is called after each file (tests pull the cable)."""
    from mpremote.transport import TransportError

    out = out or sys.stderr
    files = plan(image)
    t = _connect(port)
    written = skipped = 0
    try:
        if erase_first:
            print(f"erased {erase(t)} entries", file=out)
        # An old boot record would send the bootloader to a slot being rewritten.
        if t.fs_exists("boot_record"):
            t.fs_rmfile("boot_record")
        made: set[str] = set()
        for local, dest, sha in files:
            if _device_sha256(t, dest) == sha:
                skipped += 1
                continue
            data = local.read_bytes()
            bar = Bar(dest, len(data), out)
            _mkdirs(t, dest, made)
            t.fs_writefile(dest + ".part", data, chunk_size=chunk,
                           progress_callback=lambda done, total, b=bar: b.update(done))
            got = _device_sha256(t, dest + ".part")
            if got != sha:
                raise FlashError(f"{dest}: hash on the device {got} != {sha}; "
                                 "flash again (it resumes)")
            t.exec(f"import os\nos.rename({dest + '.part'!r}, {dest!r})")
            bar.finish("verified")
            written += 1
            if after_file is not None:
                after_file(written)
        # Every file once more, then the record: only a whole image is bootable.
        bad = [dest for _, dest, sha in files if _device_sha256(t, dest) != sha]
        if bad:
            raise FlashError(f"{len(bad)} files do not match after writing, e.g. {bad[0]}")
        t.fs_writefile("boot_record", RECORD.encode())
        provisioned = t.fs_exists("config.json")
    except (TransportError, OSError) as exc:
        raise FlashError(f"connection lost after {written} of {len(files)} files ({exc}); "
                         "the device is not done: run flash again to resume") from None
    finally:
        try:
            t.exit_raw_repl()
            t.close()
        except (TransportError, OSError):
            pass
    return {"written": written, "skipped": skipped, "files": len(files),
            "provisioned": int(provisioned)}


# machine.reset() on a board; the unix port has none, and there a reset is the
# interpreter's exit (its supervisor starts it again, as hal.reset() does).
_RESET = ("import machine\ntry:\n machine.reset()\n"
          "except AttributeError:\n import sys\n sys.exit()\n")


def reset(port: str) -> None:
    """Reset the device so it boots what is on its filesystem (it drops off the
    REPL at once, so nothing is waited for)."""
    from mpremote.transport import TransportError

    t = _connect(port)
    try:
        t.exec_raw_no_follow(_RESET)
    except (TransportError, OSError) as exc:
        raise FlashError(f"could not reset the device on {port}: {exc}") from None
    finally:
        try:
            t.close()
        except (TransportError, OSError):
            pass


def base_image(port: str, firmware: Path, erase_flash: bool) -> None:
    """A new ESP32: MicroPython itself, with esptool (the base image from
    micropython.org for the board)."""
    if not firmware.exists():
        raise FlashError(f"no base image at {firmware}")
    esptool = [sys.executable, "-m", "esptool", "--port", port]
    if erase_flash:
        subprocess.run([*esptool, "erase_flash"], check=True)
    subprocess.run([*esptool, "--baud", "460800", "write_flash", "0", str(firmware)],
                   check=True)


# -- provision ----------------------------------------------------------------
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
    t = _connect(port)
    try:
        for name, data in (files or {}).items():
            t.fs_writefile(name, data)
            if bytes(t.fs_readfile(name)) != data:
                raise FlashError(f"{name} on the device does not read back as written")
        t.fs_writefile("config.json", json.dumps(cfg).encode())
        back = json.loads(bytes(t.fs_readfile("config.json")))
        if back != cfg:
            raise FlashError("config.json on the device does not read back as written")
    finally:
        t.exit_raw_repl()
        t.close()


def register(edge: str, dev: str, station: str, kind: str, command_key: str,
             mqtt_password_hash: str | None, token: str) -> dict[str, Any]:
    """Tell the edge the device, its command key and (MQTT) its broker
    password's hash, over the edge's authenticated API."""
    payload: dict[str, Any] = {"id": dev, "station": station, "kind": kind,
                               "command_key": command_key}
    if mqtt_password_hash:
        payload["mqtt_password"] = mqtt_password_hash
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
def _flash_cmd(args: argparse.Namespace) -> int:
    try:
        if args.base_image:
            base_image(args.port, args.base_image, args.erase)
        image = args.image or build(args.board)
        r = flash(args.port, image, erase_first=args.erase and not args.base_image)
    except (FlashError, BuildError, subprocess.CalledProcessError) as exc:
        print(f"huimin flash: {exc}", file=sys.stderr)
        return 1
    version = read_manifest(image)["version"]
    print(f"{args.port}: version {version} flashed and verified ({r['written']} files written, "
          f"{r['skipped']} already there).")
    if not r["provisioned"]:
        print(f"Not provisioned yet. Next: huimin provision --port {args.port} ... "
              "(it resets the device when done)")
    elif not args.no_reset:
        try:
            reset(args.port)
        except FlashError as exc:
            print(f"huimin flash: {exc}; press the board's reset button", file=sys.stderr)
            return 1
        print("Reset: the device boots the new image with its identity.")
    return 0


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
        cfg = device_config(args.dev, args.kind, args.site, "mqtt" if mqtt else "serial",
                            args.slots, args.uart, mqtt, region_key, args.ota_key or "", extra)
        # The edge learns the key first: a device it cannot command is no use.
        if args.edge:
            register(args.edge, args.dev, args.station, args.kind, cfg["cmd_key"], mqtt_hash,
                     token)
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


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("flash", help="copy the firmware to a device over USB serial",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, help="the device's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--board", default="unix", choices=sorted(BOARD_PORTS),
                   help="board to build for (default unix; hardware/boards/ has their pin maps)")
    p.add_argument("--image", type=Path, help="an image folder already built (huimin ota build)")
    p.add_argument("--erase", action="store_true",
                   help="wipe the device first (with --base-image: its whole flash)")
    p.add_argument("--base-image", type=Path,
                   help="MicroPython .bin for a new ESP32, written with esptool first")
    p.add_argument("--no-reset", action="store_true",
                   help="leave a provisioned device in its REPL (by default it is reset to "
                   "boot the new image; an unprovisioned one is left for `provision`)")
    p.set_defaults(func=_flash_cmd)
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
    q.add_argument("--slots", type=int, default=12, help="a dock's slot count (default 12)")
    q.add_argument("--uart", default="/dev/ttyS1",
                   help="the device's serial line to the edge (serial link)")
    q.add_argument("--mqtt-host", help="MQTT broker: the device uses MQTT (TLS), not serial")
    q.add_argument("--mqtt-port", type=int, default=8883, help="the broker's TLS port (8883)")
    q.add_argument("--ca", type=Path, help="the county CA certificate, ca.der (huimin ca)")
    q.add_argument("--wifi-ssid", help="Wi-Fi network for a board on MQTT (ESP32-S3); the "
                   "password from --wifi-password-file, $HUIMIN_WIFI_PASSWORD or a prompt")
    q.add_argument("--wifi-password-file", type=Path)
    q.add_argument("--region-key-file", type=Path, help="a kiosk's lookup-token key (hex) "
                   "from the region, in a file of mode 0600 (or $HUIMIN_REGION_KEY)")
    q.add_argument("--ota-key", help="the update key's public half (huimin ota keygen)")
    q.add_argument("--edge", help="edge URL to register the device with, e.g. "
                   "http://127.0.0.1:8080 (through an SSH tunnel to the Pi)")
    add_token_arg(q)
    q.add_argument("--keys-file", type=Path, help="instead of --edge, on the edge itself: its "
                   "device-keys file")
    q.add_argument("--no-reset", action="store_true",
                   help="leave the device in its REPL (e.g. to run `huimin diag` next)")
    q.set_defaults(func=_provision_cmd)

