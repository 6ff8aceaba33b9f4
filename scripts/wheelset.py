#!/usr/bin/env python3
"""Which file pip would take for each package of a role's lock on a given machine, read
from the package index without emulation and without downloading anything.

    .venv/bin/python scripts/wheelset.py                     # the edge role on a 64-bit Pi
    .venv/bin/python scripts/wheelset.py --arch armv7l       # ... on 32-bit Raspberry Pi OS
    .venv/bin/python scripts/wheelset.py --role technician --arch aarch64

For each pinned release (its markers evaluated for that machine) it lists the release's files
on the index (PyPI's JSON simple API), takes the best wheel whose tags a CPython 3.11 with
glibc 2.36 on that CPU accepts (Raspberry Pi OS 12 and Debian 12), else the source archive,
and checks that the file's sha256 is among the lock's hashes (else pip --require-hashes
would refuse it). A source archive must build on the machine: SOURCE_BUILDS says with what,
and scripts/bootstrap.sh installs it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
INDEX = "https://pypi.org/simple"
GLIBC_MINOR = 36  # Debian 12 / Raspberry Pi OS 12: glibc 2.36
PYTHON = (3, 11)
VERSION, FULL_VERSION, ABI = "3.11", "3.11.2", "cp311"

# Locked packages that come as source on an ARM Pi, and what builds them (all installed by
# scripts/bootstrap.sh for the role that needs them).
SOURCE_BUILDS = {
    "pyscard": "swig, gcc, libc6-dev, python3-dev and libpcsclite-dev (C extension)",
    "esptool": "setuptools from locks/bootstrap.txt (pure Python)",
}


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str
    hashes: frozenset[str]


@dataclass(frozen=True)
class Choice:
    pin: Pin
    kind: str  # "wheel", "source" or "missing"
    filename: str
    hash_locked: bool


def read_lock(path: Path) -> list[Pin]:
    pins = []
    text = path.read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\\n]+))?", block)
        if not m:
            continue
        hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
        pins.append(Pin(canonicalize_name(m.group(1)), m.group(2), (m.group(3) or "").strip(),
                        hashes))
    return pins


def environment(arch: str) -> dict[str, str]:
    return {"implementation_name": "cpython", "platform_python_implementation": "CPython",
            "python_version": VERSION, "python_full_version": FULL_VERSION,
            "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
            "platform_machine": arch, "platform_release": "", "platform_version": "",
            "implementation_version": FULL_VERSION, "extra": ""}


def supported_tags(arch: str) -> list[Tag]:
    """What pip on that machine accepts, best first (as packaging.tags.sys_tags would say
    there): manylinux down from the machine's glibc, for its CPU."""
    platforms = []
    for minor in range(GLIBC_MINOR, 16, -1):
        platforms.append(f"manylinux_2_{minor}_{arch}")
        if minor == 17:
            platforms.append(f"manylinux2014_{arch}")
    platforms.append(f"linux_{arch}")
    tags = list(cpython_tags(PYTHON, abis=[ABI], platforms=platforms))
    tags += list(compatible_tags(PYTHON, ABI, platforms))
    return tags


def index_files(name: str) -> list[dict[str, object]]:
    req = urllib.request.Request(f"{INDEX}/{name}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        files: list[dict[str, object]] = json.load(r)["files"]
    return files


def choose(pin: Pin, tags: list[Tag], files: list[dict[str, object]]) -> Choice:
    rank = {t: i for i, t in enumerate(tags)}
    best: tuple[int, str, str] | None = None
    source: tuple[str, str] | None = None
    for f in files:
        filename = str(f["filename"])
        sha = str(dict(f["hashes"]).get("sha256", ""))  # type: ignore[call-overload]
        if f.get("yanked"):
            continue
        if filename.endswith(".whl"):
            _, version, _, wheel_tags = parse_wheel_filename(filename)
            if str(version) != pin.version:
                continue
            score = min((rank[t] for t in wheel_tags if t in rank), default=None)
            if score is not None and (best is None or score < best[0]):
                best = (score, filename, sha)
        elif filename.endswith((".tar.gz", ".zip")):
            try:
                _, version = parse_sdist_filename(filename)
            except ValueError:
                continue
            if str(version) == pin.version:
                source = (filename, sha)
    if best is not None:
        return Choice(pin, "wheel", best[1], best[2] in pin.hashes)
    if source is not None:
        return Choice(pin, "source", source[0], source[1] in pin.hashes)
    return Choice(pin, "missing", "", False)


def wheel_set(role: str, arch: str) -> list[Choice]:
    env = environment(arch)
    tags = supported_tags(arch)
    out = []
    for pin in read_lock(ROOT / "locks" / f"{role}.txt"):
        if pin.marker and not Marker(pin.marker).evaluate(env):
            continue
        out.append(choose(pin, tags, index_files(pin.name)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--role", default="edge", choices=("edge", "technician", "dev"))
    ap.add_argument("--arch", default="aarch64", help="aarch64 (64-bit Pi OS), armv7l (32-bit)")
    args = ap.parse_args()
    choices = wheel_set(args.role, args.arch)
    bad = 0
    for c in choices:
        note = ""
        if c.kind == "missing":
            note = "  <- no wheel for this machine and no source: cannot install"
        elif not c.hash_locked:
            note = "  <- its sha256 is not in the lock: pip --require-hashes refuses it"
        elif c.kind == "source":
            how = SOURCE_BUILDS.get(c.pin.name)
            note = f"  (builds with {how})" if how else "  <- source with no known build here"
        bad += note.startswith("  <-")
        print(f"{c.pin.name:24} {c.pin.version:14} {c.kind:7} {c.filename}{note}")
    wheels = sum(c.kind == "wheel" for c in choices)
    sources = sum(c.kind == "source" for c in choices)
    print(f"{args.role} on {args.arch}: {len(choices)} packages, {wheels} wheels, "
          f"{sources} from source, {bad} that cannot install")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
