"""Build the device firmware: cross-compile to .mpy with mpy-cross and lay out
the device filesystem image (what `huimin flash` copies and what the simulator
runs under the MicroPython unix port)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "hardware" / "boards"
BUILD = ROOT / "build" / "firmware"

# board name -> (port folder, board file)
BOARD_PORTS = {"unix": ("unix", "unix_dock.json"), "esp32s3": ("esp32s3", "esp32s3_dock.json")}


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


def _sources(port: str) -> list[tuple[Path, str]]:
    """(source file, path on the device) for everything that ships."""
    out: list[tuple[Path, str]] = []
    for folder in ("lib", "drivers", "apps"):
        for src in sorted((FIRMWARE / folder).rglob("*.py")):
            if src.name == "__init__.py" and not src.read_text().strip():
                # Empty package markers are for CPython tools; MicroPython imports
                # folders as namespace packages, and each module object costs heap.
                continue
            rel = src.relative_to(FIRMWARE).as_posix()
            out.append((src, rel))
    # The board's port (hal.py and its helpers) sits at the top of the image.
    for src in sorted((FIRMWARE / "ports" / port).glob("*.py")):
        out.append((src, src.name))
    return out


def build(board: str = "unix", out: Path | None = None) -> Path:
    """Build the image for `board`; returns its folder. Rebuilds only changed files."""
    if board not in BOARD_PORTS:
        raise BuildError(f"unknown board {board!r}; known: {', '.join(sorted(BOARD_PORTS))}")
    port, board_file = BOARD_PORTS[board]
    dest = out or (BUILD / board)
    dest.mkdir(parents=True, exist_ok=True)
    mpyc = mpy_cross_path()
    manifest: dict[str, str] = {}
    for src, rel in _sources(port):
        target = dest / (rel[:-3] + ".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.stat().st_mtime < src.stat().st_mtime:
            # Source name = the dotted module name, which the device interns for
            # the import anyway: tracebacks stay readable at no extra heap.
            modname = rel.removeprefix("lib/").removesuffix(".py").replace("/", ".")
            r = subprocess.run([mpyc, "-O3", "-s", modname, "-o", str(target), str(src)],
                               capture_output=True, text=True)
            if r.returncode:
                raise BuildError(f"mpy-cross failed on {rel}: {r.stderr.strip()}")
        manifest[target.relative_to(dest).as_posix()] = _sha256(target)
    # Data files ship as they are (an app's wording, read from flash when needed).
    for src in sorted((FIRMWARE / "apps").rglob("*.txt")):
        rel = src.relative_to(FIRMWARE).as_posix()
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)
        manifest[rel] = _sha256(dest / rel)
    shutil.copyfile(FIRMWARE / "main.py", dest / "main.py")
    shutil.copyfile(BOARDS / board_file, dest / "board.json")
    for extra in ("main.py", "board.json"):
        manifest[extra] = _sha256(dest / extra)
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return dest


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()
