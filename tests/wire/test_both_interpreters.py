"""The shared codec and the dock state machine, under CPython (each case a
pytest test) and under the real MicroPython interpreter running the shipped
.mpy files in the heap the dock ships with (hardware/sim/spec.py HEAP)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hardware.sim.spec import HEAP
from tests.wire import cases
from tools.firmware import build, micropython_path, mpy_cross_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("case", cases.CASES, ids=lambda f: f.__name__[5:])
def test_cpython(case, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    # apps.dock.slots, journal and log for the device-side cases; files in tmp_path
    for p in (ROOT / "firmware", ROOT / "firmware" / "lib"):
        monkeypatch.syspath_prepend(str(p))
    monkeypatch.chdir(tmp_path)
    case()


def test_micropython_runs_every_case(tmp_path: Path) -> None:
    fw = build("unix")
    # The cases ship as .mpy too: compiling them from source would need more
    # than the heap the code under test is held to.
    (tmp_path / "cases").mkdir()
    for src in (ROOT / "tests" / "wire" / "cases").glob("*.py"):
        subprocess.run([mpy_cross_path(), "-o", str(tmp_path / "cases" / f"{src.stem}.mpy"),
                        str(src)], check=True)
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(fw / 'lib')!r}, {str(fw)!r}, {str(tmp_path)!r}]\n"
        "import cases\n"
        "sys.exit(1 if cases.run_all() else 0)\n")
    r = subprocess.run([micropython_path(), "-X", f"heapsize={HEAP}", str(script)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(cases.CASES)} passed, 0 failed" in r.stdout
