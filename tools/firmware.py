"""Build the device firmware: cross-compile to .mpy with mpy-cross and lay out
the device filesystem image (what `huimin flash` copies and what the simulator
runs under the MicroPython unix port)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "hardware" / "boards"
BUILD = ROOT / "build" / "firmware"

# board name -> (port folder, board file)
BOARD_PORTS = {"unix": ("unix", "unix_dock.json"), "esp32s3": ("esp32s3", "esp32s3_dock.json"),
               "esp32s3-kiosk": ("esp32s3", "esp32s3_kiosk.json")}


class BuildError(RuntimeError):
    pass


def _tool(name: str) -> str:
    """A command installed beside this interpreter (the venv), else on PATH."""
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        raise BuildError(f"{name} not found: run ./scripts/bootstrap.sh")
    return found


def mpy_cross_path() -> str:
    return _tool("mpy-cross")


def micropython_path() -> str:
    return _tool("micropython")


# What only one kind of device runs: a board of the other kind ships without
# it. The simulation board ("kind": "any") runs docks and kiosks from one image.
ONLY_FOR = {
    "dock": ("apps/dock/", "lib/wire/rdm6300.py", "drivers/tag_reader.py",
             "drivers/mcp23017.py"),
    "kiosk": ("apps/kiosk/", "lib/wire/idcard.py", "lib/wire/hmi.py", "lib/wire/hmi_query.py",
              "lib/wire/kiosk_messages.py", "drivers/display.py", "drivers/sam_reader.py"),
}


def ships(rel: str, kind: str) -> bool:
    """Whether a firmware file goes into an image for a device of this kind.
    A real board never gets the emulators' halves of the codec
    (wire/*_module.py: what a tag reader or a card module sends); the
    simulation board keeps them, for the codec's cases run under MicroPython."""
    if kind != "any" and rel.startswith("lib/wire/") and rel.endswith("_module.py"):
        return False
    for other, paths in ONLY_FOR.items():
        if other != kind and kind != "any" and any(rel.startswith(p) for p in paths):
            return False
    return True


def _sources(port: str, source: Path, kind: str = "any") -> list[tuple[Path, str]]:
    """(source file, path on the device) for everything that ships."""
    out: list[tuple[Path, str]] = []
    for folder in ("lib", "drivers", "apps", "bootloader"):
        for src in sorted((source / folder).rglob("*.py")):
            if src.name == "__init__.py" and not src.read_text().strip():
                # Empty package markers are for CPython tools; MicroPython imports
                # folders as namespace packages, and each module object costs heap.
                continue
            rel = src.relative_to(source).as_posix()
            if ships(rel, kind):
                out.append((src, rel))
    # The board's port (hal.py and its helpers) sits at the top of the image.
    for src in sorted((source / "ports" / port).glob("*.py")):
        out.append((src, src.name))
    return out


ROM_SOURCE = ROOT / "hardware" / "esp32s3_rom"


def build_rom(out: Path | None = None) -> Path:
    """The ESP32-S3 port's built-in modules as the unix port runs them
    (hardware/esp32s3_rom/), compiled: what the simulator puts on a board-
    emulated device's MICROPYPATH, after its own filesystem."""
    dest = out or (ROOT / "build" / "esp32s3-rom")
    dest.mkdir(parents=True, exist_ok=True)
    mpyc = mpy_cross_path()
    for src in sorted(ROM_SOURCE.glob("*.py")):
        target = dest / (src.stem + ".mpy")
        if not target.exists() or target.stat().st_mtime < src.stat().st_mtime:
            _compile(mpyc, src.stem, src, target)
    return dest


def firmware_version() -> str:
    """The version the source tree builds (firmware/VERSION)."""
    return (FIRMWARE / "VERSION").read_text().strip()


def security_version() -> int:
    """firmware/SECURITY: raised by a release that fixes a security hole; a
    device that confirmed such an image refuses every image below it."""
    return int((FIRMWARE / "SECURITY").read_text().strip())


def build(board: str = "unix", out: Path | None = None, version: str | None = None,
          source: Path = FIRMWARE, security: int | None = None) -> Path:
    """Build the image for `board`; returns its folder. Rebuilds only changed
    files. The image holds the slot's files (lib/, apps/, drivers/, the port's
    hal), the bootloader (main.py, bootloader/), `version`, `board.json` and
    `manifest.json` (version, board, and the SHA-256 of every file); `sign()`
    adds `manifest.sig`. `source` is the firmware tree (tests build variants)."""
    if board not in BOARD_PORTS:
        raise BuildError(f"unknown board {board!r}; known: {', '.join(sorted(BOARD_PORTS))}")
    port, board_file = BOARD_PORTS[board]
    dest = out or (BUILD / board)
    dest.mkdir(parents=True, exist_ok=True)
    mpyc = mpy_cross_path()
    files: dict[str, str] = {}
    # The unix port is the simulator's: one image runs docks and kiosks there.
    kind = "any" if port == "unix" else str(json.loads((BOARDS / board_file).read_text())["kind"])
    for src, rel in _sources(port, source, kind):
        target = dest / (rel[:-3] + ".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.stat().st_mtime < src.stat().st_mtime:
            # Source name = the dotted module name, which the device interns for
            # the import anyway: tracebacks stay readable at no extra heap.
            modname = (rel.removeprefix("lib/").removeprefix("bootloader/").removesuffix(".py")
                       .replace("/", "."))
            _compile(mpyc, modname, src, target)
        files[target.relative_to(dest).as_posix()] = _sha256(target)
    # A file that no longer ships must not linger from an earlier build.
    for old in dest.rglob("*.mpy"):
        if old.relative_to(dest).as_posix() not in files:
            old.unlink()
    # Data files ship as they are (an app's wording, read from flash when needed).
    for src in sorted((source / "apps").rglob("*.txt")):
        rel = src.relative_to(source).as_posix()
        if not ships(rel, kind):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        _put(dest / rel, src.read_bytes())
        files[rel] = _sha256(dest / rel)
    version = version or firmware_version()
    _put(dest / "main.py", (source / "main.py").read_bytes())
    _put(dest / "board.json", (BOARDS / board_file).read_bytes())
    _put(dest / "version", (version + "\n").encode())
    for extra in ("main.py", "board.json", "version"):
        files[extra] = _sha256(dest / extra)
    board_name = json.loads((dest / "board.json").read_text())["name"]
    manifest = {"version": version,
                "security": security_version() if security is None else security,
                "board": board_name, "files": dict(sorted(files.items()))}
    # indent=1: one '"path": "sha256",' line per file, as lib/ota.py reads it.
    text = json.dumps(manifest, indent=1)
    mpath = dest / "manifest.json"
    if not mpath.exists() or mpath.read_text() != text:
        _put(mpath, text.encode())
        (dest / "manifest.sig").unlink(missing_ok=True)  # a signature is for one manifest
    return dest


def _compile(mpyc: str, modname: str, src: Path, target: Path) -> None:
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    r = subprocess.run([mpyc, "-O3", "-s", modname, "-o", str(tmp), str(src)],
                       capture_output=True, text=True)
    if r.returncode:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"mpy-cross failed on {src.name}: {r.stderr.strip()}")
    os.replace(tmp, target)


def _put(path: Path, data: bytes) -> None:
    """Written whole or not at all: two builds of one image at once (parallel
    tests, a technician's second terminal) each see a complete file."""
    if path.exists() and path.read_bytes() == data:
        return  # untouched, so a file's time says when it last changed
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def read_manifest(image: Path) -> dict[str, Any]:
    m: dict[str, Any] = json.loads((image / "manifest.json").read_text())
    return m


# -- signing (the technician's machine; the private key never leaves it) --------
def keygen(private_path: Path) -> str:
    """Make an Ed25519 update key: the private key as PEM (mode 0600), and the
    public key's hex returned (what `provision` puts on devices)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if private_path.exists():
        raise BuildError(f"{private_path} exists; not overwriting a signing key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return public_key_hex(private_path)


def _private_key(private_path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise BuildError(f"{private_path} is not an Ed25519 private key")
    return key


def public_key_hex(private_path: Path) -> str:
    from cryptography.hazmat.primitives import serialization

    pub = _private_key(private_path).public_key()
    return str(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex())


def sign(image: Path, private_path: Path) -> None:
    """Sign the image's manifest.json (Ed25519); writes manifest.sig (hex)."""
    sig = _private_key(private_path).sign((image / "manifest.json").read_bytes())
    (image / "manifest.sig").write_text(sig.hex() + "\n")


def install(image: Path, flash: Path) -> None:
    """Lay an image out on a simulated device's filesystem as `flash` leaves a
    board: the bootloader (main.py, bootloader/) at the top, the image in slot_a.
    Links, not copies: every simulated device shares the one build."""
    flash.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image / "main.py", flash / "main.py")
    # Anti-rollback from the first boot: the floor is the image's security version
    # (never lowered), as `huimin flash` leaves a board.
    floor_file = flash / "ota_floor"
    sec = int(read_manifest(image)["security"])
    try:
        old = int(floor_file.read_text())
    except (OSError, ValueError):
        old = -1
    if sec > old:
        floor_file.write_text(str(sec))
    for name, target in (("bootloader", image / "bootloader"), ("slot_a", image)):
        link = flash / name
        if link.is_symlink() or not link.exists():
            link.unlink(missing_ok=True)
            link.symlink_to(target, target_is_directory=True)
