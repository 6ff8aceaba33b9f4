"""A county's setup commands as docs/deploy.md runs them: `huimin ca`, then
`huimin broker` from the edge's configuration and device registry, and a real
Mosquitto started on what it wrote; `huimin token` add and revoke. Secrets
land in 0600 files and never on the terminal."""

from __future__ import annotations

import getpass
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from edge.adapters.api_tokens import ApiTokens
from edge.adapters.device_keys import dump_devices, write_private
from tests.conftest import needs_mosquitto
from tools.broker import free_port, mosquitto_path, password_hash
from tools.cli import main as cli


def _edge_toml(tmp: Path, port: int) -> Path:
    toml = tmp / "edge.toml"
    write_private(toml, f"""
[edge]
site = "anji"
db = "{tmp / 'edge.db'}"
[mqtt]
url = "mqtt://127.0.0.1:{port}"
username = "huimin-edge"
password = "edge-broker-password-0123"
[[stations]]
id = "s1"
name_zh = "一号站"
lat = 30.6
lon = 119.6
devices = ["dock-a"]
""")
    write_private(tmp / "device-keys.toml", dump_devices(
        {"dock-a": {"command_key": "a1" * 32, "mqtt_password": password_hash("dock-a-pw")}}))
    return toml


def _connects(port: int, user: str | None, password: str | None,
              ca: Path | None = None) -> int:
    done = threading.Event()
    rc: list[int] = []
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"t-{user}")
    if user:
        c.username_pw_set(user, password)
    if ca is not None:
        c.tls_set(ca_certs=str(ca))
    c.on_connect = lambda cl, ud, fl, r, pr: (rc.append(int(r.value)), done.set())
    try:
        c.connect("127.0.0.1", port)
    except ConnectionRefusedError:
        return -1  # not listening (yet)
    c.loop_start()
    done.wait(10)
    c.loop_stop()
    c.disconnect()
    return rc[0] if rc else -1


@needs_mosquitto
def test_ca_and_broker_commands_make_a_broker_that_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port, tls_port = free_port(), free_port()
    toml = _edge_toml(tmp_path, port)
    ca = tmp_path / "ca"
    assert cli(["ca", "--dir", str(ca), "--host", "127.0.0.1"]) == 0
    assert (ca / "ca.key").stat().st_mode & 0o077 == 0
    assert (ca / "ca.der").exists() and (ca / "server.pem").exists()
    assert cli(["ca", "--dir", str(ca), "--host", "127.0.0.1"]) == 0  # a new server cert only
    out = tmp_path / "mosquitto"
    assert cli(["broker", "--config", str(toml), "--ca-dir", str(ca), "--out", str(out),
                "--tls-port", str(tls_port), "--bind", "127.0.0.1", "--user",
                getpass.getuser(), "--data-dir", str(tmp_path / "data")]) == 0
    printed = capsys.readouterr().out
    assert "1 device account(s)" in printed
    assert "edge-broker-password-0123" not in printed
    assert "edge-broker-password-0123" not in (out / "passwd").read_text()
    exe = mosquitto_path()
    assert exe is not None
    proc = subprocess.Popen([exe, "-c", str(out / "mosquitto.conf")])
    try:
        import time

        for _ in range(100):
            if _connects(port, "huimin-edge", "edge-broker-password-0123") == 0:
                break
            time.sleep(0.05)
        assert _connects(port, "huimin-edge", "edge-broker-password-0123") == 0
        assert _connects(port, None, None) != 0  # anonymous
        assert _connects(tls_port, "dock-a", "dock-a-pw", ca / "ca.pem") == 0
        assert _connects(tls_port, "dock-a", "wrong", ca / "ca.pem") != 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_token_add_revoke_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = _edge_toml(tmp_path, 1883)
    out = tmp_path / "wang.token"
    assert cli(["token", "--config", str(toml), "add", "wang-laptop", "--out", str(out)]) == 0
    token = out.read_text().strip()
    assert out.stat().st_mode & 0o077 == 0
    assert token not in capsys.readouterr().out
    tokens = ApiTokens(tmp_path / "api-tokens.toml")
    assert tokens.check(token) == "wang-laptop" and tokens.check(token + "x") is None
    assert token not in (tmp_path / "api-tokens.toml").read_text()  # only its hash
    assert cli(["token", "--config", str(toml), "list"]) == 0
    assert capsys.readouterr().out.split() == ["wang-laptop"]
    assert cli(["token", "--config", str(toml), "revoke", "wang-laptop"]) == 0
    assert tokens.check(token) is None  # the file is reread: no restart needed
    assert cli(["token", "--config", str(toml), "revoke", "wang-laptop"]) == 1
