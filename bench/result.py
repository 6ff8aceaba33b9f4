"""Each benchmark's headline figures as one machine-readable line, so
bench/all.py can put every benchmark into one table:

    RESULT {"bench": ..., "rows": [{"figure", "value", "unit", "baseline", "target"}]}

`baseline` is what the same run measured to compare with (None where the
figure has none); `target` is DESIGN.md's (or the issue's), as text."""

from __future__ import annotations

import json
from typing import Any

PREFIX = "RESULT "


def row(figure: str, value: float, unit: str, baseline: float | None = None,
        target: str | None = None) -> dict[str, Any]:
    return {"figure": figure, "value": value, "unit": unit, "baseline": baseline,
            "target": target}


def emit(bench: str, rows: list[dict[str, Any]]) -> None:
    print(PREFIX + json.dumps({"bench": bench, "rows": rows}), flush=True)
