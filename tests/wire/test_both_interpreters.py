"""The shared codec and the dock state machine, under CPython (each case a
pytest test) and under the real MicroPython interpreter running the shipped
.mpy files with a 64K heap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.wire import cases
from tools.firmware import build, micropython_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("case", cases.CASES, ids=lambda f: f.__name__[5:])
def test_cpython(case):  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "firmware"))  # apps.dock.slots for the state-machine cases
    try:
        case()
    finally:
        sys.path.remove(str(ROOT / "firmware"))


def test_micropython_runs_every_case(tmp_path: Path) -> None:
    fw = build("unix")
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(fw / 'lib')!r}, {str(fw)!r}, {str(ROOT / 'tests' / 'wire')!r}]\n"
        "import cases\n"
        "sys.exit(1 if cases.run_all() else 0)\n")
    r = subprocess.run([micropython_path(), "-X", "heapsize=64K", str(script)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(cases.CASES)} passed, 0 failed" in r.stdout
