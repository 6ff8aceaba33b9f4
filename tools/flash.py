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
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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
                  extra: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {"dev": dev, "kind": kind, "site": site, "link": link, "uart": uart}
    if kind == "dock":
        cfg["slots"] = slots
    if kind == "kiosk":
        if len(region_key) < 32:
            raise FlashError("a kiosk needs --region-key (at least 16 bytes, hex)")
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


def provision(port: str, cfg: dict[str, Any]) -> None:
    t = _connect(port)
    try:
        t.fs_writefile("config.json", json.dumps(cfg).encode())
        back = json.loads(bytes(t.fs_readfile("config.json")))
        if back != cfg:
            raise FlashError("config.json on the device does not read back as written")
    finally:
        t.exit_raw_repl()
        t.close()


def register(edge: str, dev: str, station: str, kind: str) -> dict[str, Any]:
    body = json.dumps({"id": dev, "station": station, "kind": kind}).encode()
    req = urllib.request.Request(f"{edge}/api/devices", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            res: dict[str, Any] = json.loads(r.read())
            return res
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("detail") or exc.reason
        raise FlashError(f"the edge refused the registration: {detail}") from None
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
    try:
        mqtt = None
        if args.mqtt_host:
            mqtt = {"host": args.mqtt_host, "port": args.mqtt_port}
            if args.mqtt_user:
                mqtt.update(user=args.mqtt_user, password=args.mqtt_password or "")
        extra: dict[str, Any] = {}
        if args.wifi_ssid:
            if not mqtt:
                raise FlashError("--wifi-ssid is for a device on MQTT: give --mqtt-host too")
            extra["wifi"] = {"ssid": args.wifi_ssid, "password": args.wifi_password or ""}
        cfg = device_config(args.dev, args.kind, args.site, "mqtt" if mqtt else "serial",
                            args.slots, args.uart, mqtt, args.region_key or "",
                            args.ota_key or "", extra)
        provision(args.port, cfg)
        if args.edge:
            register(args.edge, args.dev, args.station, args.kind)
        if not args.no_reset:
            reset(args.port)
    except (FlashError, ValueError) as exc:
        print(f"huimin provision: {exc}", file=sys.stderr)
        return 1
    shown: dict[str, Any] = {k: ("*" if k == "region_key" else v) for k, v in cfg.items()}
    for k in ("mqtt", "wifi"):
        if isinstance(cfg.get(k), dict) and "password" in cfg[k]:
            shown[k] = {**cfg[k], "password": "*"}
    print(f"{args.port}: {args.dev} provisioned: {json.dumps(shown, ensure_ascii=False)}")
    if args.edge:
        print(f"registered with the edge at {args.edge} (station {args.station})")
    if not args.no_reset:
        print("Reset: the device starts with its identity; `huimin console --port "
              f"{args.port}` shows it come up.")
    return 0


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
                       description="Write config.json on the device (id, site, kind, slots, "
                       "link, MQTT credentials, kiosk region key, update key), register "
                       "the device with the edge, and reset it so it starts with them.")
    q.add_argument("--port", required=True, help="the device's serial port")
    q.add_argument("--dev", required=True, help="device id, e.g. dock-014")
    q.add_argument("--kind", choices=("dock", "kiosk"), default="dock")
    q.add_argument("--site", default="town", help="site (town) name, as in the edge's config")
    q.add_argument("--station", default="", help="station the device belongs to (edge)")
    q.add_argument("--slots", type=int, default=12, help="a dock's slot count (default 12)")
    q.add_argument("--uart", default="/dev/ttyS1",
                   help="the device's serial line to the edge (serial link)")
    q.add_argument("--mqtt-host", help="MQTT broker: the device uses MQTT, not serial")
    q.add_argument("--mqtt-port", type=int, default=1883)
    q.add_argument("--mqtt-user")
    q.add_argument("--mqtt-password")
    q.add_argument("--wifi-ssid", help="Wi-Fi network for a board on MQTT (ESP32-S3)")
    q.add_argument("--wifi-password")
    q.add_argument("--region-key", help="a kiosk's lookup-token key (hex), from the region")
    q.add_argument("--ota-key", help="the update key's public half (huimin ota keygen)")
    q.add_argument("--edge", help="edge URL to register the device with, e.g. "
                   "http://edge.local:8080")
    q.add_argument("--no-reset", action="store_true",
                   help="leave the device in its REPL (e.g. to run `huimin diag` next)")
    q.set_defaults(func=_provision_cmd)

