"""Every `huimin` command line the docs give parses with the real command line: a
subcommand, option or choice that does not exist (or a required one left out) fails
here, not in front of a technician with a board on the bench."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from tools.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
INLINE = re.compile(r"`((?:\./)?huimin [^`]+)`")


def command_lines(text: str) -> tuple[list[str], list[str]]:
    """(whole command lines of the shell blocks, continuations joined and comments
    dropped; inline `huimin ...` spans, which often name a command or an option in
    a sentence rather than give a whole command line)."""
    whole: list[str] = []
    fence: str | None = None  # the open block's language
    pending = ""
    for raw in text.splitlines():
        if raw.startswith("```"):
            fence = None if fence is not None else raw[3:].strip()
            continue
        if fence not in ("sh", "bash", "console", ""):
            continue
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        line = line.split(" #")[0].strip().removeprefix("sudo ").removeprefix("$ ")
        if line.startswith(("huimin ", "./huimin ")):
            whole.append(line)
    spans = [s for s in INLINE.findall(text) if not re.search(r"…|\.\.\.|\[|\||\bCOMMAND\b", s)]
    return whole, spans


def _subcommand(parser: argparse.ArgumentParser, words: list[str]) -> tuple[
        argparse.ArgumentParser, list[str]]:
    """The (sub)parser a command line reaches, and the words left for it."""
    while words and not words[0].startswith("-"):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or words[0] not in subs[0].choices:
            break
        parser, words = subs[0].choices[words[0]], words[1:]
    return parser, words


def _named_only(line: str) -> str | None:
    """For a span in a sentence: its command exists and each --option it names is one
    of that command's; None when so, else what is wrong."""
    parser, rest = _subcommand(build_parser(), _args(line))
    for word in rest:
        if not word.startswith("-"):
            continue
        option = word.split("=")[0]
        if option not in parser._option_string_actions:
            return f"{parser.prog} has no option {option}"
    if rest and not rest[0].startswith("-"):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for alternative in rest[0].split("/") if subs else ():
            if alternative not in subs[0].choices:
                return f"{parser.prog} has no command {alternative}"
    return None


def _args(line: str) -> list[str]:
    # <placeholders> stand for one word each
    line = re.sub(r"<[^<>]*>", "x", line)
    words = shlex.split(line)
    return words[1:]


def test_the_docs_have_command_lines_to_check() -> None:
    assert sum(len(command_lines(d.read_text())[0]) for d in DOCS) >= 15


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_line_in_the_docs_parses(doc: Path) -> None:
    bad = []
    whole, spans = command_lines(doc.read_text())
    for line in whole:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                _, unknown = build_parser().parse_known_args(_args(line))
            if unknown:
                bad.append(f"{line}\n    unknown: {' '.join(unknown)}")
        except SystemExit as exc:
            if exc.code:  # --help exits 0
                bad.append(f"{line}\n    {err.getvalue().strip().splitlines()[-1]}")
    for span in spans:
        if (why := _named_only(span)) is not None:
            bad.append(f"{span}\n    {why}")
    assert not bad, f"{doc.name}:\n" + "\n".join(bad)


def test_deploy_mds_configuration_is_refused_as_is_and_loads_once_filled_in(
        tmp_path: Path) -> None:
    """The edge.toml deploy.md shows: its <placeholders> refused by name; filled in, the
    edge's own parser takes every key of it (none unknown, every value in range)."""
    from edge.config import ConfigError, parse

    text = (ROOT / "docs" / "deploy.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    assert "[edge]" in block and "[[kiosks]]" in block
    import tomllib

    with pytest.raises(ConfigError, match="still the placeholder"):
        parse(tomllib.loads(block), tmp_path)
    filled = re.sub(r'"<[^"]*>"', '"' + "k" * 32 + '"', block)
    cfg = parse(tomllib.loads(filled), tmp_path)
    assert cfg.site == "anji" and cfg.kiosks == ("kiosk-001",)


def test_deploy_md_lists_every_setting_as_the_schema_has_it() -> None:
    """docs/deploy.md's table of settings is the schema's own (huimin edge --settings)."""
    from edge.config import reference

    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert reference() in text, "regenerate it: huimin edge --settings"


# A path in backquotes or a Markdown link: a file of the repository, named from the
# document's folder, the repository's root, or the firmware's (its docs name device
# files as the device sees them: lib/..., wire/..., apps/...).
_PATH = re.compile(r"`([\w.\-/]+/[\w.\-]+\.(?:py|md|toml|json|txt|sh|html|cfg|csv))`"
                   r"|\]\(([^)#\s:]+)(?:#[^)]*)?\)")


def test_every_path_the_docs_name_exists() -> None:
    """docs/, the README and the firmware's READMEs name only files that exist (a
    path starting with / is a Pi's or a URL's, not the repository's)."""
    docs = [*(ROOT / "docs").glob("*.md"), ROOT / "README.md",
            *(ROOT / "firmware").rglob("README.md"), *(ROOT / "bench").glob("*.md")]
    missing = []
    for doc in docs:
        for m in _PATH.finditer(doc.read_text(encoding="utf-8")):
            path = m.group(1) or m.group(2)
            if path.startswith("/"):
                continue
            bases = (doc.parent, ROOT, ROOT / "firmware", ROOT / "firmware" / "lib")
            if not any((b / path).exists() for b in bases):
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert not missing, missing


def test_every_doc_the_code_cites_exists() -> None:
    """Comments and docstrings send readers to docs/*.md: each one is there."""
    cited = re.compile(r"docs/[\w-]+\.md")
    missing = []
    for folder in ("edge", "cloud_bridge", "tools", "hardware", "firmware", "scripts", "bench"):
        for src in (ROOT / folder).rglob("*.py"):
            for name in set(cited.findall(src.read_text(encoding="utf-8"))):
                if not (ROOT / name).exists():
                    missing.append(f"{src.relative_to(ROOT)}: {name}")
    assert not missing, missing
