"""The city tier's uplink in edge.toml (kind = "nats"): the node list, TLS to
anything off this machine, an account and a key required; clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.config import ConfigError, parse


def _cfg(tmp_path: Path, **uplink: Any) -> dict[str, Any]:
    up = {"name": "city-tier", "kind": "nats", "username": "site-t", "password": "pw",
          "secret": "s" * 20, **uplink}
    return {"edge": {"site": "t", "http_port": 0, "db": str(tmp_path / "edge.db")},
            "uplinks": [up]}


def test_the_nodes_are_a_list_and_tls_is_required_off_this_machine(tmp_path: Path) -> None:
    cfg = parse(_cfg(tmp_path, url="tls://city-1:4222, tls://city-2:4222,tls://city-3:4222",
                     ca="city-ca.pem"), base=tmp_path)
    up = cfg.uplinks[0]
    assert up.kind == "nats"
    assert up.servers == ["tls://city-1:4222", "tls://city-2:4222", "tls://city-3:4222"]
    assert up.ca == tmp_path / "city-ca.pem"
    assert parse(_cfg(tmp_path, url="nats://127.0.0.1:4222")).uplinks[0].ca is None
    with pytest.raises(ConfigError, match="tls:// to the city tier"):
        parse(_cfg(tmp_path, url="tls://city-1:4222,nats://city-2:4222"))
    with pytest.raises(ConfigError, match="each node as tls://host:port"):
        parse(_cfg(tmp_path, url="https://city-1"))
    with pytest.raises(ConfigError, match="username and password"):
        parse(_cfg(tmp_path, url="tls://city-1:4222", password=""))
    with pytest.raises(ConfigError, match="secret must be at least 16"):
        parse(_cfg(tmp_path, url="tls://city-1:4222", secret="short"))
