"""The systemd units a Pi runs (deploy/systemd/) and `huimin service install`:
the edge is Type=notify with a watchdog, runs as its own user in a hardened
sandbox that may write only its state folder; the units pass
`systemd-analyze verify` (which this test shows catching a mistake); the
installer fills them in and refuses a configuration the sandbox would break."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools.service import BROKER_UNIT, EDGE_UNIT, UNITS, verify

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not installed (Debian's systemd)")


def _install(tmp: Path, db: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp / "edge.toml"
    cfg.write_text(f'[edge]\nsite = "anji"\ndb = "{db}"\n')
    return subprocess.run([sys.executable, "-m", "tools.cli", "service", "install",
                           "--config", str(cfg), "--root", str(tmp / "root"),
                           "--prefix", str(ROOT)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_the_edge_unit_is_supervised_and_sandboxed() -> None:
    unit = (UNITS / EDGE_UNIT).read_text()
    lines = {ln.strip() for ln in unit.splitlines()}
    for want in ("Type=notify", "WatchdogSec=30", "User=@USER@", "StateDirectory=huimin",
                 "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
                 "PrivateTmp=yes", "ProtectHome=yes", "Restart=always"):
        assert want in lines, want
    assert "User=root" not in lines
    broker = {ln.strip() for ln in (UNITS / BROKER_UNIT).read_text().splitlines()}
    assert {"Type=notify", "User=mosquitto", "Conflicts=mosquitto.service"} <= broker


@needs_analyze
def test_installed_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    r = _install(tmp_path, "/var/lib/huimin/edge.db")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "systemd-analyze verify: clean" in r.stdout
    units = tmp_path / "root" / "etc" / "systemd" / "system"
    edge = (units / EDGE_UNIT).read_text()
    assert f"ExecStart={ROOT}/.venv/bin/huimin edge --config {tmp_path}/edge.toml" in edge
    assert "@" not in "".join(ln for ln in edge.splitlines()
                              if not ln.startswith("#") and "Filter" not in ln)
    assert verify([units / EDGE_UNIT, units / BROKER_UNIT]) == ""
    # The check can fail: a misspelt key in a copy is reported.
    bad = tmp_path / "huimin-typo.service"
    bad.write_text(edge.replace("ProtectSystem=strict", "ProtectSystm=strict"))
    assert "ProtectSystm" in (verify([bad]) or "")


def test_install_refuses_a_database_the_sandbox_could_not_write(tmp_path: Path) -> None:
    r = _install(tmp_path, "/home/pi/edge.db")
    assert r.returncode == 2
    assert "edge.db is /home/pi/edge.db" in r.stdout and "/var/lib/huimin" in r.stdout
    assert not (tmp_path / "root").exists()
