"""Every `huimin` command documents itself: `--help` exits 0 and says what
the command does and what it takes."""

from __future__ import annotations

import pytest

from tools.cli import main as cli

COMMANDS = [["sim"], ["edge"], ["backend"], ["build"], ["flash"], ["provision"], ["fleet"], ["console"], ["diag"],
            ["ota"], ["ota", "keygen"], ["ota", "build"], ["ota", "push"], ["ota", "status"],
            ["city"], ["service"], ["service", "install"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_help(cmd: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli([*cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: huimin " + " ".join(cmd)) and len(out) > 200, out


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli(["--help"])
    out = capsys.readouterr().out
    for c in ("sim", "edge", "backend", "build", "flash", "provision", "fleet", "console", "diag", "ota",
              "city", "service"):
        assert f"    {c} " in out or f"    {c}\n" in out, c


def test_console_decodes_device_log_lines(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "console.log"
    log.write_text("I 1000 dock: dock dock-001 up\n"
                   "W 3500 uplink: mqtt down: OSError\n"
                   "Traceback (most recent call last):\n"
                   "E 4000 main: fatal: MemoryError\n", encoding="utf-8")
    assert cli(["console", "--file", str(log)]) == 0
    out = capsys.readouterr().out.splitlines()
    # Lines already in the file carry no wall time: the time they were read is not theirs.
    assert out[0] == " " * 8 + " INFO  +    0.000s dock: dock dock-001 up"
    assert out[1].endswith("WARN  +    2.500s uplink: mqtt down: OSError")
    assert out[2] == "Traceback (most recent call last):"
    assert "ERROR +    3.000s main: fatal: MemoryError" in out[3]
    assert cli(["console", "--file", str(log), "--level", "E"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2  # the error and the traceback
    assert cli(["console", "--file", str(tmp_path / "none.log")]) == 1


def test_console_stamps_only_lines_that_arrive_while_following(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io
    import re

    from tools.console import show

    out = io.StringIO()
    show([("I 10 dock: old\n", False), ("I 20 dock: new\n", True)], out)
    old, new = out.getvalue().splitlines()
    assert old.startswith(" " * 8 + " INFO")
    assert re.match(r"\d\d:\d\d:\d\d INFO  \+    0.010s dock: new$", new)
