"""`huimin flash`: a device's image, over its serial REPL with mpremote's
transport (raw REPL; `resume`, so the unix port's REPL is not soft-reset,
which would end it).

flash lays the image out as the bootloader expects (docs/ota.md): main.py and
bootloader/ at the top, the image in slot_a/, then the boot record, written
last, so a device whose cable was pulled mid-flash is never taken for done.
Each file goes to `<name>.part` and is renamed once its SHA-256 on the device
matches; files already there with the right hash are skipped, so running
flash again resumes where the cable was pulled. A provisioned device is then
reset to boot the new image (`--no-reset` leaves it in its REPL); a new one is
left for `provision` (tools/provision.py), which resets it once it has its
identity."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from tools import ui
from tools.firmware import BOARD_PORTS, BuildError, build, read_manifest

RECORD = "a - 0 0 flashed"  # the boot record flash leaves (bootloader/slot.py)


class FlashError(RuntimeError):
    """A clear, technician-facing reason; the CLI prints it and exits 1."""


def leave(t: Any) -> None:
    """Let go of a device's REPL. A device that dropped off meanwhile (reset, cable)
    makes this fail too: what went wrong before is the error to report, not this."""
    from mpremote.transport import TransportError

    try:
        t.exit_raw_repl()
    except (TransportError, OSError):
        pass
    try:
        t.close()
    except (TransportError, OSError):
        pass


def connect(port: str, timeout_s: float = 5.0) -> Any:
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


# What each board's port reports: sys.platform, and a word of sys.implementation._machine
# ("Generic ESP32S3 module with ESP32S3" on an S3; the unix port names its compiler).
PLATFORMS = {"unix": ("linux", ""), "esp32s3": ("esp32", "ESP32S3")}


def device_platform(t: Any) -> tuple[str, str]:
    """(sys.platform, sys.implementation._machine) as the device reports them."""
    out = t.exec("import sys\nprint(sys.platform)\nprint(sys.implementation._machine)")
    lines = [*bytes(out).decode(errors="replace").strip().splitlines(), "", ""]
    return lines[0].strip(), lines[1].strip()


def _describe(platform: str, machine: str) -> str:
    if platform == "esp32":
        return machine or "an ESP32"
    if platform == "linux":
        return "MicroPython's unix port (the simulator's)"
    return f"a {platform} board ({machine})"


def boards_for(platform: str, machine: str) -> list[str]:
    """The boards (tools/firmware.py BOARD_PORTS) whose image runs on this device."""
    return sorted(b for b, (port, _) in BOARD_PORTS.items()
                  if PLATFORMS[port][0] == platform and PLATFORMS[port][1] in machine)


def check_board(t: Any, port: str, board: str) -> None:
    """Refuse an image for another kind of board: the unix build on an ESP32 would
    never boot (and the other way round)."""
    platform, machine = device_platform(t)
    if board not in boards_for(platform, machine):
        fits = boards_for(platform, machine)
        raise FlashError(f"the device on {port} is {_describe(platform, machine)}: an image "
                         f"for --board {board} would not run on it"
                         + (f"; use --board {' or --board '.join(fits)}" if fits else ""))


def detect_board(port: str) -> str:
    """The board to build for, asked of the device itself; a kind it cannot tell
    (a new ESP32-S3 becomes a dock or a kiosk) is the technician's to say."""
    t = connect(port)
    try:
        platform, machine = device_platform(t)
        fits = boards_for(platform, machine)
        kind = None
        if t.fs_exists("config.json"):
            import json

            kind = json.loads(t.fs_readfile("config.json")).get("kind")
    finally:
        leave(t)
    if len(fits) > 1 and kind is not None:
        fits = [b for b in fits if (b.endswith("-kiosk")) == (kind == "kiosk")]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        raise FlashError(f"the device on {port} is {_describe(platform, machine)}, which no "
                         f"board here runs on (boards: {', '.join(sorted(BOARD_PORTS))})")
    raise FlashError(f"the device on {port} is {_describe(platform, machine)}: say what it "
                     f"becomes with --board {' or --board '.join(fits)}")


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


def _device_floor(t: Any) -> int:
    """The device's anti-rollback floor (0 where none is written yet)."""
    if not t.fs_exists("ota_floor"):
        return 0
    text = t.fs_readfile("ota_floor").decode(errors="replace").strip()
    if not text.isdigit():
        raise FlashError(f"the device's ota_floor is damaged ({text[:20]!r}); flash with "
                         "--erase to start the device over")
    return int(text)


def flash(port: str, image: Path, erase_first: bool = False, out: Any = None,
          chunk: int = 1024, after_file: Any = None) -> dict[str, int]:
    """Copy and verify the image; returns counts (written, skipped).
    after_file(n_written) is called after each file (tests pull the cable)."""
    from mpremote.transport import TransportError

    con = ui.console(out or sys.stderr)
    files = plan(image)
    security = int(read_manifest(image)["security"])
    t = connect(port)
    written = skipped = 0
    try:
        check_board(t, port, str(read_manifest(image)["board"]))
        if erase_first:
            con.print(f"erased {erase(t)} entries")
        floor = _device_floor(t)
        if security < floor:
            raise FlashError(f"the device's security floor is {floor} and this image's is "
                             f"{security}: it would refuse to update past an older image. "
                             "Flash a newer build (or --erase to start the device over)")
        # An old boot record would send the bootloader to a slot being rewritten.
        if t.fs_exists("boot_record"):
            t.fs_rmfile("boot_record")
        made: set[str] = set()
        with ui.progress(con) as bars:
            for local, dest, sha in files:
                if _device_sha256(t, dest) == sha:
                    skipped += 1
                    continue
                data = local.read_bytes()
                task = bars.add_task(dest, total=len(data), note="")
                _mkdirs(t, dest, made)
                t.fs_writefile(dest + ".part", data, chunk_size=chunk,
                               progress_callback=lambda done, total, task=task:
                               bars.update(task, completed=done))
                got = _device_sha256(t, dest + ".part")
                if got != sha:
                    raise FlashError(f"{dest}: hash on the device {got} != {sha}; "
                                     "flash again (it resumes)")
                t.exec(f"import os\nos.rename({dest + '.part'!r}, {dest!r})")
                bars.update(task, completed=len(data), note="verified")
                written += 1
                if after_file is not None:
                    after_file(written)
        # Every file once more, then the record: only a whole image is bootable.
        bad = [dest for _, dest, sha in files if _device_sha256(t, dest) != sha]
        if bad:
            raise FlashError(f"{len(bad)} files do not match after writing, e.g. {bad[0]}")
        t.fs_writefile("boot_record", RECORD.encode())
        # Anti-rollback from the first boot: no image older than this one, however
        # genuinely signed, will be taken over the air (bootloader/verify_image.py).
        if security > floor:
            t.fs_writefile("ota_floor", str(security).encode())
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

    t = connect(port)
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


# -- CLI ----------------------------------------------------------------------
def _flash_cmd(args: argparse.Namespace) -> int:
    try:
        if args.base_image:
            base_image(args.port, args.base_image, args.erase)
        board = args.board
        if args.image is None and board is None:
            board = detect_board(args.port)
            print(f"{args.port}: the device is for --board {board}")
        image = args.image or build(board)
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


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("flash", help="copy the firmware to a device over USB serial",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, help="the device's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--board", choices=sorted(BOARD_PORTS),
                   help="board to build for (default: asked of the device; a new ESP32-S3 "
                   "needs it said, esp32s3 for a dock, esp32s3-kiosk for a kiosk; "
                   "hardware/boards/ has their pin maps). An image for another kind of "
                   "board than the device is refused")
    p.add_argument("--image", type=Path, help="an image folder already built (huimin ota build)")
    p.add_argument("--erase", action="store_true",
                   help="wipe the device first (with --base-image: its whole flash)")
    p.add_argument("--base-image", type=Path,
                   help="MicroPython .bin for a new ESP32, written with esptool first")
    p.add_argument("--no-reset", action="store_true",
                   help="leave a provisioned device in its REPL (by default it is reset to "
                   "boot the new image; an unprovisioned one is left for `provision`)")
    p.set_defaults(func=_flash_cmd)
