"""Every benchmark, one after another, and one table of their headline
figures (each benchmark's RESULT line, bench/result.py), each beside the
baseline its own run measured.

    .venv/bin/python bench/all.py            # the sizes the docs quote (~10 min)
    .venv/bin/python bench/all.py --quick    # tiny sizes: a smoke run, not figures
    .venv/bin/python bench/all.py --only ingest,city
    .venv/bin/python bench/all.py --runs 3   # each three times: median and spread

Each benchmark runs as its own process (as it does alone), so one that fails
is a row saying so, and the rest still run. The peer (ThingsBoard's gateway)
runs where ../shared/peers/tb-gateway exists; elsewhere its row says why not.
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def _ratio(r: dict[str, Any]) -> float | None:
    base = r.get("baseline")
    return r["value"] / base if base else None


def table(results: list[tuple[str, list[dict[str, Any]], str, float]]) -> str:
    """One row per figure: the median of its runs, and the spread (lowest and
    highest) of its ratio to its baseline over those runs."""
    t = ui.table("benchmark", "figure", "value", "unit", "baseline", "ratio", "spread",
                 "target")
    for name, docs, why, _ in results:
        if not docs:
            t.add_row(name, f"not measured: {why}"[:110], "", "", "", "", "", "")
            continue
        for k, r in enumerate(docs[0]["rows"]):
            runs = [d["rows"][k] for d in docs if k < len(d["rows"])]
            value = statistics.median(x["value"] for x in runs)
            bases = [x["baseline"] for x in runs if x.get("baseline")]
            ratios = [q for q in map(_ratio, runs) if q is not None]
            ratio = f"{statistics.median(ratios):.2f}x" if ratios else "-"
            if len(ratios) > 1:
                spread = f"{min(ratios):.2f}-{max(ratios):.2f}x"
            elif len(runs) > 1:
                spread = f"{_fmt(min(x['value'] for x in runs))}-" \
                         f"{_fmt(max(x['value'] for x in runs))}"
            else:
                spread = "-"
            t.add_row(name, r["figure"], _fmt(value), r["unit"],
                      _fmt(statistics.median(bases)) if bases else "-", ratio, spread,
                      r.get("target") or "")
    return ui.text(t, width=240)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (the test suite's smoke run)")
    ap.add_argument("--only", help=f"comma-separated, of: {', '.join(BENCHES)}")
    ap.add_argument("--runs", type=int, default=1,
                    help="runs of each benchmark: the table shows the median and the spread"
                    " of each ratio (default 1)")
    ap.add_argument("--timeout", type=float, default=1800, help="per benchmark, s")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    results = []
    for i, name in enumerate(names, 1):
        full, tiny = BENCHES[name]
        docs: list[dict[str, Any]] = []
        why, took = "", 0.0
        for run in range(1, args.runs + 1):
            label = f"[{i}/{len(names)}] {name}" + (f" run {run}/{args.runs}"
                                                    if args.runs > 1 else "")
            print(f"{label} ...", file=sys.stderr, flush=True)
            doc, why, t = run_one(name, tiny if args.quick else full, args.timeout)
            took += t
            print(f"{label}: {'done' if doc else why} in {t:.0f} s", file=sys.stderr,
                  flush=True)
            if doc is not None:
                docs.append(doc)
        results.append((name, docs, "" if docs else why, took))
    print(table(results))
    return 0 if all(docs for _, docs, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
