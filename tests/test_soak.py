"""The soak (scripts/soak.py) as a developer runs it, scaled down to half a
minute: a town under random faults, then its report: the audit's counts and
wrong stories, each device's lowest heap, the edge's memory over the run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, needs_mosquitto


@needs_mosquitto
def test_a_short_soak_reports_and_finds_nothing_wrong(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "scripts/soak.py", "--minutes", "0.5", "--docks", "2",
                        "--seed", "5", "--dir", str(tmp_path / "town")], cwd=ROOT,
                       capture_output=True, text=True, timeout=280)
    print(r.stdout, r.stderr[-3000:])
    assert r.returncode == 0, r.stdout[-3000:]
    out = r.stdout
    assert "  injected " in out and "wrong stories (slot, bike, time)  0" in out
    for dev in ("dock-001", "dock-002", "kiosk-001"):
        assert f"  {dev} " in out.split("Lowest free heap per device")[1]
    assert "Edge RSS: start " in out and out.rstrip().endswith("nothing lost, nothing wrong")
