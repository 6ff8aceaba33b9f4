"""The mistakes a user makes, through the real command line: each ends in one line
that names the command, says what is wrong and what to do, and exits non-zero; no
traceback (`-v` keeps it, for a bug report)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def _edge_toml(d: Path, name: str, text: str | bytes) -> str:
    p = d / name
    if isinstance(text, str):
        text = text.encode()
    p.write_bytes(text)
    os.chmod(p, 0o600)
    return str(p)


def _mistakes(d: Path, port: int) -> list[tuple[list[str], str]]:
    """(the command line, what its one line must say)"""
    edge = f'[edge]\nsite = "anji"\nhttp_host = "127.0.0.1"\nhttp_port = {port}\n' \
           f'db = "{d / "edge.db"}"\n'
    gbk = _edge_toml(d, "gbk.toml", '[edge]\nsite = "安吉"\n'.encode("gbk"))
    bom = _edge_toml(d, "bom.toml", b"\xef\xbb\xbf" + (edge + "heartbeat_timeout = 30\n").encode())
    placeholder = _edge_toml(d, "placeholder.toml", edge + '[[uplinks]]\nkind = "webhook"\n'
                             'url = "https://city.example/api"\n'
                             "secret = \"<this site's key, from the city>\"\n")
    table = _edge_toml(d, "table.toml", edge + '[stations]\nid = "anji-001"\n')
    busy = _edge_toml(d, "busy.toml", edge)
    (d / "unknown-kind.toml").write_text('[[fault]]\nkind = "flood"\n')
    (d / "bad-at.toml").write_text('[[fault]]\nkind = "broker_kill"\nat = "soon"\n')
    return [
        (["edge", "--config", gbk], "save it again with the encoding UTF-8"),
        (["edge", "--config", bom], "did you mean edge.heartbeat_timeout_s?"),
        (["edge", "--config", placeholder], "is still the placeholder"),
        (["edge", "--config", table], "stations must be a list"),
        (["edge", "--config", str(d / "none.toml")], "no such file"),
        (["edge", "--config", busy], f"port {port} on 127.0.0.1 is in use"),
        (["backend", "--port", str(port), "--db", str(d / "b.db")], f"port {port}"),
        (["fleet", "--edge", "notaurl"], "is not the edge's URL"),
        (["ota", "push", str(d / "no-image"), "dock-001"], "no such file"),
        (["sim", "--port", "99999"], "99999 is not a port"),
        (["sim", "--faults", "missing.toml"], "no such schedule file"),
        (["sim", "--faults", str(d / "unknown-kind.toml")], "unknown kind 'flood'"),
        (["sim", "--faults", str(d / "bad-at.toml")], "are seconds, as numbers"),
    ]


def _huimin(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUIMIN_EDGE_TOKEN": "not-a-real-token",
           "HUIMIN_WEBHOOK_SECRET": "s" * 32}
    return subprocess.run([str(ROOT / "huimin"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_each_mistake_is_one_line_that_says_what_to_do(tmp_path: Path, busy_port: int) -> None:
    for args, says in _mistakes(tmp_path, busy_port):
        r = _huimin(args, tmp_path)
        out = r.stdout + r.stderr
        last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
        print(f"huimin {' '.join(args[:2])} ... -> {last}")
        assert r.returncode != 0, (args, out)
        assert "Traceback" not in out, (args, out)
        assert last.startswith(f"huimin {args[0]}"), (args, out)
        assert says in last, (args, last)


def test_verbose_keeps_the_traceback(tmp_path: Path, busy_port: int) -> None:
    args, _ = next(m for m in _mistakes(tmp_path, busy_port) if "busy.toml" in m[0][-1])
    r = _huimin(["-v", *args], tmp_path)
    assert r.returncode != 0 and "Traceback" in r.stderr, r.stderr[-2000:]


def test_token_add_overwrites_nothing_and_saves_no_token_nobody_holds(
        tmp_path: Path, busy_port: int) -> None:
    cfg = _edge_toml(tmp_path, "edge.toml", '[edge]\nsite = "anji"\n'
                     f'db = "{tmp_path / "edge.db"}"\n')
    held = tmp_path / "wang.token"
    assert _huimin(["token", "--config", cfg, "add", "wang", "--out", str(held)],
                   tmp_path).returncode == 0
    first = held.read_text()
    mistakes = [
        (["add", "wang", "--out", str(tmp_path / "again.token")], "a token named wang exists"),
        (["add", "li", "--out", str(held)], "exists: give another --out"),
        (["add", "li", "--out", str(tmp_path / "no" / "such" / "li.token")], "no folder"),
    ]
    for args, says in mistakes:
        r = _huimin(["token", "--config", cfg, *args], tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert says in r.stderr.strip().splitlines()[-1], r.stderr
    assert held.read_text() == first  # not overwritten
    listed = _huimin(["token", "--config", cfg, "list"], tmp_path).stdout.split()
    assert listed == ["wang"]  # no hash saved for a token that went nowhere
    r = _huimin(["token", "--config", cfg, "add", "wang", "--replace", "--out",
                 str(tmp_path / "new.token")], tmp_path)
    assert r.returncode == 0 and (tmp_path / "new.token").read_text() != first


def test_the_sims_update_key_is_made_once_kept_private_and_trusted(tmp_path: Path) -> None:
    """huimin sim's devices trust the town's own update key, so the `ota build` and
    `ota push` it prints work on the town; the key outlives a run."""
    from hardware.sim.cli import sim_update_key
    from tools.firmware import public_key_hex

    key = tmp_path / ".sim" / "ota-key.pem"
    pub = sim_update_key(key)
    assert key.stat().st_mode & 0o777 == 0o600
    assert sim_update_key(key) == pub == public_key_hex(key)
