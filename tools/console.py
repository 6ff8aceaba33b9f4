"""`huimin console`: a device's console, its log lines decoded. Device lines
are "LEVEL ticks source: text" (firmware/lib/log.py); the console shows the
wall time, the level spelled out and the device's uptime, colours errors on a
terminal, and passes everything else (tracebacks, the REPL) through. A line
already in a file when it is read has no wall time (the device records none,
and the time it was read would be wrong): its column is blank, its uptime kept.

  huimin console --port /dev/ttyUSB0          a device on USB serial
  huimin console --file .sim/devices/dock-001/console.log --follow
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from tools import ui

LEVELS = {"I": "INFO", "W": "WARN", "E": "ERROR"}
_LINE = re.compile(r"^([IWE]) (\d+) ([\w.-]+): (.*)$")
_STYLE = {"W": "yellow", "E": "bold red"}


def decode(line: str, base_ms: int | None = None, live: bool = True) -> str:
    """One console line, decoded for a person (non-log lines unchanged); `live`: it
    arrived just now, so the wall clock is its time."""
    m = _LINE.match(line.rstrip("\n"))
    if not m:
        return line.rstrip("\n")
    lvl, ms, src, text = m.groups()
    up = (int(ms) - base_ms) / 1000 if base_ms is not None else int(ms) / 1000
    wall = time.strftime("%H:%M:%S") if live else " " * 8
    return f"{wall} {LEVELS[lvl]:<5} +{up:9.3f}s {src}: {text}"


def lines_from_port(port: str, baud: int) -> Iterator[tuple[str, bool]]:
    import serial

    try:
        s = serial.Serial(port, baud, timeout=0.5)
    except (serial.SerialException, OSError) as exc:
        raise SystemExit(f"huimin console: cannot open {port}: {exc}") from None
    buf = b""
    with s:
        while True:
            buf += s.read(256)
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                yield raw.decode("utf-8", "replace").rstrip("\r"), True


def lines_from_file(path: Path, follow: bool) -> Iterator[tuple[str, bool]]:
    """(line, live): lines written after the end was first reached are live."""
    live = False
    with open(path, encoding="utf-8", errors="replace") as f:
        while True:
            line = f.readline()
            if line:
                yield line, live
            elif not follow:
                return
            else:
                live = True
                time.sleep(0.2)


def show(lines: Iterable[tuple[str, bool]], out: TextIO, min_level: str = "I") -> int:
    # On a terminal warnings and errors stand out (rich); in a file, plain lines.
    con = ui.console(out) if out.isatty() else None
    order = "IWE"
    base: int | None = None
    n = 0
    for line, live in lines:
        m = _LINE.match(line.rstrip("\n"))
        if m:
            if base is None or int(m.group(2)) < base:
                base = int(m.group(2))  # the first line, or a reboot
            if order.index(m.group(1)) < order.index(min_level):
                continue
        text = decode(line, base, live)
        if con is not None:
            con.print(text, style=_STYLE.get(m.group(1), "") if m else "", markup=False)
        else:
            out.write(text + "\n")
            out.flush()
        n += 1
    return n


def _console(args: argparse.Namespace) -> int:
    if not args.port and not args.file:
        print("huimin console: give --port or --file", file=sys.stderr)
        return 2
    try:
        src = (lines_from_port(args.port, args.baud) if args.port
               else lines_from_file(args.file, args.follow))
        show(src, sys.stdout, args.level)
    except FileNotFoundError as exc:
        print(f"huimin console: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("console", help="a device's console with its log lines decoded",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", help="the device's serial port")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--file", type=Path, help="a console log (the simulator's, a capture)")
    p.add_argument("--follow", action="store_true", help="keep reading as the file grows")
    p.add_argument("--level", choices=("I", "W", "E"), default="I",
                   help="the lowest level shown: I(nfo), W(arn), E(rror)")
    p.set_defaults(func=_console)
