#!/usr/bin/env python3
"""Refresh the hashed locks in locks/, one per role, and print what changed.

    .venv/bin/python scripts/lock.py             # after editing pyproject.toml: keep every
                                                 # pin that still fits, resolve only the rest
    .venv/bin/python scripts/lock.py --upgrade   # take the newest releases pyproject allows
    .venv/bin/python scripts/lock.py --check     # exit 1 if a lock no longer matches pyproject

Roles (docs/deploy.md, "What each role installs"):
  edge.txt        the Pi: `pip install .` with no extras
  technician.txt  the technician's laptop: [technician] and what tools/ needs of the edge's set
  dev.txt         a developer's clone: everything ([dev]: the simulator and the tests)
  bootstrap.txt   pip itself and setuptools, the build backend of this project and of the
                  locked packages that come as source (pyscard, esptool)

dev.txt is resolved first and the others are held to its pins, so the Pi runs exactly the
versions the test suite ran. Every lock is universal (uv's --universal: one file for x86-64,
aarch64 and armv7l, with markers where a dependency differs) and lists the sha256 of every
file of each pinned release, which pip checks with --require-hashes (scripts/bootstrap.sh).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "locks"
PYTHON = "3.11"  # Raspberry Pi OS 12 (Bookworm) and Debian 12: the oldest Python we run on

# Of the edge's own dependencies, what the technician's commands import (tools/ui.py's rich,
# tools/ca.py's and tools/firmware.py's cryptography, tools/console.py's pyserial).
TECHNICIAN_FROM_EDGE = ("rich", "cryptography", "pyserial")
BOOTSTRAP = ("pip", "setuptools>=77")  # esptool's sdist asks for setuptools>=77

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", re.M)


def name_of(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def pins(text: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2) for m in PIN.finditer(text)}


def role_inputs(project: dict[str, object]) -> dict[str, list[str]]:
    """Each role's top-level requirements, from pyproject.toml."""
    proj = project["project"]
    assert isinstance(proj, dict)
    edge: list[str] = list(proj["dependencies"])
    extras: dict[str, list[str]] = proj["optional-dependencies"]
    wanted = {name_of(r): r for r in edge}
    technician = [wanted[n] for n in TECHNICIAN_FROM_EDGE] + list(extras["technician"])
    return {"edge": edge, "technician": technician}


def uv() -> str:
    exe = Path(sys.executable).parent / "uv"
    found = str(exe) if exe.exists() else shutil.which("uv")
    if not found:
        sys.exit("lock.py: uv not found; run ./scripts/bootstrap.sh (a developer's install has it)")
    return found


def compile_lock(inputs: list[str] | Path, out: Path, upgrade: bool, extra: str | None = None,
                 constraints: Path | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(inputs, Path):
            source = inputs
        else:
            source = Path(tmp) / f"{out.stem}.in"
            source.write_text("\n".join(inputs) + "\n")
        cmd = [uv(), "pip", "compile", str(source), "--universal", "--python-version", PYTHON,
               "--generate-hashes", "--no-header", "--no-annotate",
               "--quiet", "-o", str(out)]
        if extra:
            cmd += ["--extra", extra]
        if constraints:
            cmd += ["--constraint", str(constraints)]
        if upgrade:
            cmd.append("--upgrade")
        env = dict(os.environ)
        # uv reads the system's CA store only when told to (a proxy's CA lives there).
        env.setdefault("UV_NATIVE_TLS", "1")
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"lock.py: resolving {out.name} failed:\n{r.stderr.strip()}")
    header = (f"# The {out.stem} role's lock: written by scripts/lock.py from pyproject.toml; "
              "do not edit.\n# pip install --require-hashes -r locks/"
              f"{out.name} (scripts/bootstrap.sh does it)\n")
    out.write_text(header + out.read_text())


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    lines = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if old is None:
            lines.append(f"  + {name} {new}")
        elif new is None:
            lines.append(f"  - {name} {old}")
        else:
            lines.append(f"  ~ {name} {old} -> {new}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upgrade", action="store_true",
                    help="take the newest releases pyproject.toml allows (default: keep pins)")
    ap.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 if a lock does not match pyproject.toml")
    args = ap.parse_args()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    inputs = role_inputs(project)
    target = LOCKS
    work = None
    if args.check:
        work = tempfile.TemporaryDirectory()
        target = Path(work.name)
        for f in LOCKS.glob("*.txt"):  # start from the current pins, as a refresh would
            shutil.copy(f, target / f.name)
    target.mkdir(exist_ok=True)
    before = {f.stem: pins(f.read_text()) for f in LOCKS.glob("*.txt")}

    dev = target / "dev.txt"
    compile_lock(ROOT / "pyproject.toml", dev, args.upgrade, extra="dev")
    with tempfile.TemporaryDirectory() as tmp:
        held = Path(tmp) / "dev-pins.txt"
        held.write_text("".join(f"{n}=={v}\n" for n, v in pins(dev.read_text()).items()))
        for role, reqs in inputs.items():
            compile_lock(reqs, target / f"{role}.txt", args.upgrade, constraints=held)
    compile_lock(list(BOOTSTRAP), target / "bootstrap.txt", args.upgrade)

    after = {f.stem: pins(f.read_text()) for f in target.glob("*.txt")}
    differ = False
    for role in ("edge", "technician", "dev", "bootstrap"):
        diff = changes(before.get(role, {}), after.get(role, {}))
        differ |= bool(diff)
        print(f"{role}: {len(after[role])} packages" + (", changed:" if diff else ", unchanged"))
        for line in diff:
            print(line)
    if work is not None:
        work.cleanup()
        if differ:
            print("lock.py --check: the locks do not match pyproject.toml; "
                  "run .venv/bin/python scripts/lock.py", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
