"""Where the technician's tools find secrets: never on the command line (it
shows in `ps` and in shell history) and never printed. A secret comes from an
environment variable, a file readable by its owner only, or a prompt."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from edge.adapters.device_keys import KeyFileError, check_private

TOKEN_ENV = "HUIMIN_EDGE_TOKEN"
TOKEN_FILE = Path.home() / ".config" / "huimin" / "edge-token"


class CredentialError(SystemExit):
    pass


def read_secret_file(path: Path) -> str:
    try:
        check_private(path)
        return path.read_text().strip()
    except (OSError, KeyFileError) as exc:
        raise CredentialError(f"{path}: {exc}") from None


def edge_token(path: Path | None = None) -> str:
    """The technician's API token: --token-file, $HUIMIN_EDGE_TOKEN, or
    ~/.config/huimin/edge-token (made by `huimin token add --out`)."""
    if path is not None:
        return read_secret_file(path)
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    if TOKEN_FILE.exists():
        return read_secret_file(TOKEN_FILE)
    raise CredentialError(
        f"no technician token: set {TOKEN_ENV}, pass --token-file, or save it to {TOKEN_FILE} "
        "(huimin token add NAME --out FILE, on the edge)")


def add_token_arg(parser: Any) -> None:
    """--token-file, as every command that talks to the edge's API takes it."""
    parser.add_argument("--token-file", type=Path,
                        help=f"your technician token (default ${TOKEN_ENV} or {TOKEN_FILE}; "
                        "huimin token add makes one)")


def add_edge_config_arg(parser: Any) -> None:
    """--config, the edge's TOML file, as every command run on the edge takes it."""
    parser.add_argument("--config", type=Path, default=Path("/etc/huimin/edge.toml"),
                        help="the edge's configuration (default /etc/huimin/edge.toml)")


def secret(what: str, env: str, path: Path | None = None) -> str:
    """A secret from a file (0600), the environment, or a prompt when a
    person is at the terminal."""
    if path is not None:
        return read_secret_file(path)
    if os.environ.get(env):
        return os.environ[env]
    if sys.stdin.isatty():
        value = getpass.getpass(f"{what}: ")
        if value:
            return value
    raise CredentialError(f"{what}: set {env} or give its file (never on the command line)")


def edge_url(text: str) -> str:
    """An argparse type: the edge's URL, http(s)://host[:port]."""
    from urllib.parse import urlparse

    u = urlparse(text)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not the edge's URL: give one like http://127.0.0.1:8080")
    return text.rstrip("/")
