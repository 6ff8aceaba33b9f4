"""The parsers' fuzz run, longer than the test suite's (tests/fuzz): for the
given minutes it runs, in turns,
  - the property tests of tests/fuzz/test_parsers.py with many more examples
    (a new random seed each round),
  - the MicroPython mutation loop (tests/fuzz/mutate.py) at the dock's heap,
    with a new seed each round,
  - when `atheris` is installed (pip install atheris; x86_64 wheels), a
    coverage-guided run over the codec's entry points (framing, message,
    MAC check, card module decoder, manifest reader).
Prints executions and failures; a failure's input is in the output, to be
kept as an @example in tests/fuzz. Usage:
    .venv/bin/python bench/fuzz.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ATHERIS_TARGET = r'''
import sys, io
sys.path[:0] = [%(lib)r]
import atheris
with atheris.instrument_imports():
    from wire import auth, idcard, message, kiosk_messages
    from wire.framing import FrameDecoder
    import ota
KEY = auth.Key(b"k" * 32)

def one(data):
    dec = FrameDecoder(512)
    mv = memoryview(data)
    off = 0
    while off < len(data):
        took = dec.feed(mv[off:])
        off += took
        while dec.next() is not None:
            pass
        if not took:
            dec.overflow()
    try:
        message.decode(data)
    except message.DecodeError:
        pass
    auth.verify(KEY, auth.DOWN, data)
    sam = idcard.SamDecoder(idcard.TEXT_KEEP)
    for body in sam.decode(data):
        try:
            idcard.person(idcard.read_text(body, sam.size))
        except ValueError:
            pass
    try:
        for _ in ota._entries(io.StringIO(data.decode("utf-8", "replace"))):
            pass
    except ValueError:
        pass

atheris.Setup(sys.argv, one)
atheris.Fuzz()
'''


def run(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                           timeout=timeout)
        return r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as exc:
        return 0, str(exc.stdout or "")


def main(args: argparse.Namespace) -> int:
    end = time.monotonic() + args.minutes * 60
    py = sys.executable
    n_tests = 16  # property tests in tests/fuzz/test_parsers.py
    executions = {"hypothesis": 0, "micropython": 0, "atheris": 0}
    failures: list[str] = []
    rounds = 0
    try:
        import atheris  # noqa: F401

        have_atheris = True
    except ImportError:
        have_atheris = False
        print("atheris not installed: no coverage-guided run (pip install atheris)")
    while time.monotonic() < end:
        rounds += 1
        seed = random.getrandbits(32)
        left = end - time.monotonic()
        env = {**os.environ, "HUIMIN_FUZZ_EXAMPLES": str(args.examples),
               "HUIMIN_FUZZ_DEVICE_ITERATIONS": str(args.iterations)}
        rc, out = run([py, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                       f"--hypothesis-seed={seed}", "tests/fuzz"], env, max(60.0, left))
        executions["hypothesis"] += n_tests * args.examples
        executions["micropython"] += args.iterations
        if rc != 0:
            failures.append(f"round {rounds} (seed {seed}):\n{out[-3000:]}")
            print(failures[-1])
        if have_atheris and time.monotonic() < end:
            script = ATHERIS_TARGET % {"lib": str(ROOT / "firmware" / "lib")}
            t = min(60.0, end - time.monotonic())
            rc, out = run([py, "-c", script, f"-max_total_time={int(max(1, t))}",
                           "-print_final_stats=1"], dict(os.environ), t + 60)
            for line in out.splitlines():
                if "stat::number_of_executed_units" in line:
                    executions["atheris"] += int(line.split(":")[-1])
            if rc != 0:
                failures.append(f"atheris round {rounds}:\n{out[-3000:]}")
                print(failures[-1])
        print(f"round {rounds}: executions so far {executions}, failures {len(failures)}",
              flush=True)
    print(f"done: {rounds} rounds in {args.minutes:g} min; executions {executions}; "
          f"failures {len(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--examples", type=int, default=2000, help="per property test and round")
    ap.add_argument("--iterations", type=int, default=20000,
                    help="MicroPython mutation loop iterations per round")
    sys.exit(main(ap.parse_args()))
