"""Each benchmark's headline figures as one machine-readable line, so
bench/all.py can put every benchmark into one table:

    RESULT {"bench": ..., "rows": [{"figure", "value", "unit", "baseline", "target"}]}

`baseline` is what the same run measured to compare with (None where the
figure has none); `target` is DESIGN.md's (or the issue's), as text."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

PREFIX = "RESULT "


def row(figure: str, value: float, unit: str, baseline: float | None = None,
        target: str | None = None) -> dict[str, Any]:
    return {"figure": figure, "value": value, "unit": unit, "baseline": baseline,
            "target": target}


def emit(bench: str, rows: list[dict[str, Any]]) -> None:
    print(PREFIX + json.dumps({"bench": bench, "rows": rows}), flush=True)


def scratch(prefix: str) -> Path:
    """A benchmark's working folder, removed when the benchmark exits (each
    held tens of MB: a CI machine filled up with them). HUIMIN_KEEP_BENCH=1
    keeps it, to read its logs."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    if not os.environ.get("HUIMIN_KEEP_BENCH"):
        atexit.register(shutil.rmtree, work, ignore_errors=True)
    return work
