"""Every `huimin` command documents itself: `--help` exits 0 and says what
the command does and what it takes."""

from __future__ import annotations

import pytest

from tools.cli import main as cli

COMMANDS = [["sim"], ["edge"], ["backend"], ["build"], ["flash"], ["provision"], ["fleet"],
            ["ota"], ["ota", "keygen"], ["ota", "build"], ["ota", "push"], ["ota", "status"]]


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
    for c in ("sim", "edge", "backend", "build", "flash", "provision", "fleet", "ota"):
        assert f"    {c} " in out or f"    {c}\n" in out, c
