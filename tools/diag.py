"""`huimin diag`: run a device's self-test (firmware/lib/selftest.py) over its
serial REPL and print a pass/fail table. For a dock: the hardware bus, each
empty slot's lock (opened and closed again; a slot with a bike is left
locked), and the tag reader of each slot holding a bike. For a kiosk: the ID
card module (its status, and a test card if one is on the reader; nothing read
from the card is printed), the display (asked for the page on show) and the
voice module (asked for its state, then made to say a test prompt). Exit 1 on
any FAIL. The self-test interrupts the device's firmware; the device is reset
afterwards (--no-reset leaves it in its REPL)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tools import ui
from tools.flash import FlashError, connect, leave, reset


def diag(port: str, reset_after: bool = True) -> list[dict[str, str]]:
    """The self-test's rows. It interrupts the device's firmware to run; reset_after
    restarts the firmware, so the device is back in service when diag ends."""
    from mpremote.transport import TransportError

    t = connect(port)
    out: list[bytes] = []
    try:
        # The test code of the image the device boots (the boot record's active slot).
        t.exec("import sys\ntry:\n s = 'slot_' + open('boot_record').read().split()[0]\n"
               "except OSError:\n s = 'slot_a'\n"
               "sys.path[:0] = [s + '/lib', s]\nimport selftest\nselftest.run(s)\n",
               data_consumer=out.append)
    except TransportError as exc:
        raise FlashError(f"the self-test failed to run: {exc}") from None
    finally:
        leave(t)
    if reset_after:
        reset(port)
    rows = []
    for line in b"".join(out).decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows


def _diag(args: argparse.Namespace) -> int:
    try:
        rows = diag(args.port, not args.no_reset)
    except FlashError as exc:
        print(f"huimin diag: {exc}", file=sys.stderr)
        return 2
    t = ui.table("CHECK", "RESULT", "DETAIL")
    for r in rows:
        t.add_row(r["check"], ui.styled(r["result"]), str(r["detail"]))
    failed = sum(1 for r in rows if r["result"] == "FAIL")
    con = ui.console()
    con.print(t)
    con.print(f"{len(rows)} checks, {failed} failed")
    return 1 if failed else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("diag", help="run a device's self-test: pass/fail table",
                       description=__doc__)
    p.add_argument("--port", required=True, help="the device's serial port")
    p.add_argument("--no-reset", action="store_true",
                   help="leave the device in its REPL afterwards (default: reset it, so its "
                   "firmware runs again)")
    p.set_defaults(func=_diag)
