"""Every benchmark, one after another, and one table of their headline
figures (each benchmark's RESULT line, bench/result.py), each beside the
baseline its own run measured.

    .venv/bin/python bench/all.py            # the sizes the docs quote (~10 min)
    .venv/bin/python bench/all.py --quick    # tiny sizes: a smoke run, not figures
    .venv/bin/python bench/all.py --only ingest,city

Each benchmark runs as its own process (as it does alone), so one that fails
is a row saying so, and the rest still run. The peer (ThingsBoard's gateway)
runs where ../shared/peers/tb-gateway exists; elsewhere its row says why not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.result import PREFIX  # noqa: E402
from tools import ui  # noqa: E402

# name -> (full-size arguments, tiny arguments)
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "latency": (["--docks", "1000", "--seconds", "20"],
                ["--docks", "20", "--seconds", "2", "--rate", "10"]),
    "swipe": (["--swipes", "30"], ["--swipes", "2"]),
    "ota": (["--rounds", "200"], ["--rounds", "5"]),
    "ingest": (["--events", "20000", "--docks", "500"], ["--events", "300", "--docks", "10"]),
    "load": (["--docks", "2000", "--seconds", "30"], ["--docks", "10", "--seconds", "2"]),
    "peer": (["--docks", "500", "--events", "40"], ["--docks", "5", "--events", "4"]),
    "city": (["--sites", "3", "--events", "30000"],
             ["--sites", "2", "--events", "200", "--seconds", "1", "--rate", "20"]),
}


def run_one(name: str, args: list[str], timeout_s: float) -> tuple[dict[str, Any] | None, str,
                                                                      float]:
    """(its RESULT, the tail of its output if it failed, seconds it took)."""
    t0 = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *args], cwd=ROOT,
                           capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None, f"did not finish in {timeout_s:.0f} s", time.perf_counter() - t0
    took = time.perf_counter() - t0
    results = [ln[len(PREFIX):] for ln in r.stdout.splitlines() if ln.startswith(PREFIX)]
    if r.returncode != 0 or not results:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        return None, f"exit {r.returncode}: " + " | ".join(tail), took
    doc: dict[str, Any] = json.loads(results[-1])
    return doc, "", took


def _fmt(v: float | None) -> str:
    if v is None or v != v:  # None or NaN
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def table(results: list[tuple[str, dict[str, Any] | None, str, float]]) -> str:
    t = ui.table("benchmark", "figure", "value", "unit", "baseline", "ratio", "target")
    for name, doc, why, _ in results:
        if doc is None:
            t.add_row(name, f"not measured: {why}"[:110], "", "", "", "", "")
            continue
        for r in doc["rows"]:
            base = r.get("baseline")
            ratio = f"{r['value'] / base:.2f}x" if base else "-"
            t.add_row(name, r["figure"], _fmt(r["value"]), r["unit"], _fmt(base), ratio,
                      r.get("target") or "")
    return ui.text(t, width=240)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (the test suite's smoke run)")
    ap.add_argument("--only", help=f"comma-separated, of: {', '.join(BENCHES)}")
    ap.add_argument("--timeout", type=float, default=1800, help="per benchmark, s")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    results = []
    for i, name in enumerate(names, 1):
        full, tiny = BENCHES[name]
        print(f"[{i}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
        doc, why, took = run_one(name, tiny if args.quick else full, args.timeout)
        print(f"[{i}/{len(names)}] {name}: {'done' if doc else why} in {took:.0f} s",
              file=sys.stderr, flush=True)
        results.append((name, doc, why, took))
    print(table(results))
    return 0 if all(doc is not None for _, doc, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
