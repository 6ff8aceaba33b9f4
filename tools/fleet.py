"""`huimin fleet`: the edge's devices, as a technician reads them (the same as
the dashboard page at <edge>/fleet)."""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from typing import Any

from rich.table import Table

from tools import ui
from tools.credentials import add_token_arg, edge_token, edge_url

DEFAULT_EDGE = "http://127.0.0.1:8080"


def devices(edge: str, token: str) -> list[dict[str, Any]]:
    """Every device, page by page (the edge sends at most 1,000 at once)."""
    out: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        req = urllib.request.Request(f"{edge}/api/devices?offset={offset}",
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                page = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            why = "your technician token was refused" if exc.code == 401 else exc.reason
            raise SystemExit(f"huimin fleet: {edge}/api/devices: {exc.code} {why}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SystemExit(f"huimin fleet: cannot read {edge}/api/devices: {exc}") from None
        out += page["devices"]
        offset = page.get("next")
    return out


def _ago(t: float) -> str:
    if not t:
        return "never"
    s = max(0.0, time.time() - t)
    return f"{s:.0f}s ago" if s < 90 else f"{s / 60:.0f}min ago" if s < 5400 else \
        f"{s / 3600:.0f}h ago"


def heap(d: dict[str, Any]) -> str:
    """Free heap after a collection at the last heartbeat (lowest since boot)."""
    if d.get("heap_free") is None:
        return ""
    low = d.get("heap_low")
    return f"{d['heap_free'] / 1024:.1f}K" + ("" if low is None else f" (low {low / 1024:.1f}K)")


def table(devs: list[dict[str, Any]]) -> Table:
    t = ui.table("DEVICE", "KIND", "STATION", "STATE", "FW", "LAST SEEN", "FAULTS",
                 "HEAP (LOW)", "LAST UPDATE")
    for d in sorted(devs, key=lambda d: d["id"]):
        t.add_row(d["id"], d["kind"], d["station"],
                  ui.styled("online" if d["online"] else "OFFLINE"), d["fw"] or "?",
                  _ago(d["last_seen"]), str(d["faults"]), heap(d), ui.styled(d.get("ota") or ""))
    return t


def summary(devs: list[dict[str, Any]]) -> str:
    online = sum(1 for d in devs if d["online"])
    return f"{len(devs)} devices, {online} online, {len(devs) - online} offline"


def _fleet(args: argparse.Namespace) -> int:
    devs = devices(args.edge, edge_token(args.token_file))
    if args.json:
        print(json.dumps(devs, ensure_ascii=False, indent=1))
    else:
        con = ui.console()
        con.print(table(devs))
        con.print(summary(devs))
    return 0 if all(d["online"] for d in devs) or not args.check else 3


def add_parser(sub: Any) -> None:
    p = sub.add_parser("fleet", help="list the edge's devices (online, firmware, faults)",
                       description=__doc__ + " Exit 3 with --check if any device is offline.")
    p.add_argument("--edge", type=edge_url, default=DEFAULT_EDGE,
                   help=f"edge URL (default {DEFAULT_EDGE})")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--check", action="store_true", help="exit 3 when a device is offline")
    add_token_arg(p)
    p.set_defaults(func=_fleet)

