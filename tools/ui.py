"""How the command line looks, from rich: consoles, progress bars and tables
shared by every `huimin` command. On a terminal bars redraw in place and
states are coloured; piped into a file or CI log, the same commands write
plain lines wide enough not to wrap, and a progress display is written once,
finished (a readable record, not a stream of redraws)."""

from __future__ import annotations

import sys
from typing import TextIO

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

# Colours of states, the same in every command.
STYLES = {"online": "green", "OFFLINE": "bold red", "PASS": "green", "FAIL": "bold red",
          "WARN": "yellow", "ERROR": "bold red", "confirmed": "green", "failed": "bold red"}


def console(out: TextIO | None = None) -> Console:
    out = out or sys.stdout
    tty = out.isatty()
    return Console(file=out, highlight=False, width=None if tty else 200, soft_wrap=not tty)


def progress(con: Console) -> Progress:
    """Bars for long work (flash, OTA): one task per file or device."""
    return Progress(TextColumn("{task.description:<34}"), BarColumn(bar_width=28),
                    TaskProgressColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[note]}"), console=con)


def table(*headers: str) -> Table:
    return Table(*headers, box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False,
                 show_edge=False)


def text(renderable: object, width: int = 200) -> str:
    """A table (or anything rich draws) as plain text, for a report or a log."""
    con = Console(width=width, no_color=True, highlight=False)
    with con.capture() as cap:
        con.print(renderable)
    return cap.get().rstrip("\n")


def styled(value: str) -> str:
    """A state in its colour (rich markup; escapes nothing else)."""
    style = STYLES.get(value)
    return f"[{style}]{value}[/]" if style else value.replace("[", r"\[")
