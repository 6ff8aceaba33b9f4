"""The device-side parsers under MicroPython itself, in the dock's heap: a
seeded mutation loop (tests/fuzz/mutate.py) over frames, messages, card
module and tag reader answers. No exception escapes a parser, and the free
heap after a collection ends where it started (no growth)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hardware.sim.spec import HEAP
from tests.conftest import ROOT
from tools.firmware import build, micropython_path, mpy_cross_path

ITERATIONS = int(os.environ.get("HUIMIN_FUZZ_DEVICE_ITERATIONS", "3000"))


def test_device_parsers_survive_mutated_input_without_growing(tmp_path: Path) -> None:
    fw = build("unix")
    subprocess.run([mpy_cross_path(), "-o", str(tmp_path / "mutate.mpy"),
                    str(ROOT / "tests" / "fuzz" / "mutate.py")], check=True)
    script = ("import sys\n"
              f"sys.path[:0] = [{str(fw / 'lib')!r}, {str(fw)!r}, {str(tmp_path)!r}]\n"
              f"sys.argv[1:] = ['{ITERATIONS}', '7']\n"
              "import mutate\n")
    r = subprocess.run([micropython_path(), "-X", f"heapsize={HEAP}", "-c", script],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    ok, intern = lines[-2].split(), lines[-1].split()
    assert ok[:2] == ["ok", str(ITERATIONS)], r.stdout[-500:]
    free0, free1 = int(ok[2]), int(ok[3])
    assert free1 >= free0 - 256, f"heap grew: {free0} free after warm-up, {free1} at the end"
    assert int(intern[2]) >= int(intern[1]) - 256, f"outside characters interned: {intern}"
