"""Every benchmark runs (bench/all.py --quick: tiny sizes) and reports its
headline figures into the one table. No figure is judged here: a test never
passes or fails on speed (the figures at real sizes are in docs/). One test
per benchmark, so the suite's workers run them side by side."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.all import BENCHES
from tests.conftest import ROOT, needs_mosquitto


@needs_mosquitto
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", list(BENCHES))
def test_the_benchmark_runs_and_reports_into_the_table(name: str) -> None:
    r = subprocess.run([sys.executable, "bench/all.py", "--quick", "--only", name], cwd=ROOT,
                       capture_output=True, text=True, timeout=880)
    print(r.stdout)
    print(r.stderr[-3000:], file=sys.stderr)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["benchmark", "figure", "value"]
    rows = [ln for ln in lines[2:] if ln.split() and ln.split()[0] == name]
    assert rows, f"{name} has no row"
    assert not any("not measured" in ln for ln in rows), rows


def test_the_table_gives_each_ratios_median_and_spread_over_runs() -> None:
    from bench.all import table

    def doc(value: float, base: float) -> dict[str, object]:
        return {"rows": [{"figure": "edge ingest", "value": value, "unit": "events/s",
                          "baseline": base, "target": ">= 0.35x"}]}
    out = table([("ingest", [doc(10, 100), doc(30, 100), doc(20, 50)], "", 1.0),
                 ("peer", [], "exit 1: no docker", 1.0)])
    row = next(ln for ln in out.splitlines() if ln.startswith("ingest"))
    assert "0.30x" in row and "0.10-0.40x" in row, row  # median 0.30 of 0.10, 0.30, 0.40
    assert "not measured: exit 1: no docker" in out
