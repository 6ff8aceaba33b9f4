"""Registration writes only what the one id rule admits (docs/security.md, "the holder of a
technician's token"): whatever id, key or hash a registration carries, the edge answers 400
or 409 with a reason, or registers it; the keys file always parses back, no device takes the
name of the edge's own accounts, and an existing device is re-keyed only when asked."""

from __future__ import annotations

import json
import random
import tomllib
from pathlib import Path
from typing import Any

import aiohttp

from edge.adapters.device_keys import load_devices
from edge.config import device_id_problem
from tests.conftest import run
from tests.edge.test_http_auth import edge
from tools.broker import Accounts, password_hash

HOSTILE_IDS = ['q"x', "huimin-edge", "huimin-edge-t", "_edge", "../../x y+#", "dock-a\n[x]",
               "DOCK-A", "-dock", "", "a" * 65, "dock/1", "dock-1+", "bridge-t", "é",
               "dock-\u0000", 7, None, ["dock-b"], {"id": "x"}]
HOSTILE_KEYS = ["", "ab", "zz" * 32, "ab" * 65, 12, None, "ab" * 31 + "a"]
HOSTILE_HASHES = ["hunter2", "$7$", "$7$101$a b$c", "$7$101$AAAA$BBBB\nuser x:y", 5,
                  "$6$rounds$salt$hash"]


def _random_id(rng: random.Random) -> str:
    alphabet = "abcz09-_.:/@#+ \"'\\\n\t[]{}=" + "".join(chr(c) for c in range(0x80, 0x90))
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 70)))


def test_registration_admits_only_the_id_rule_and_never_breaks_the_keys_file(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with edge(tmp_path) as (svc, base, token), aiohttp.ClientSession() as s:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

            async def register(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
                async with s.post(base + "/api/devices", data=json.dumps(body),
                                  headers=headers) as r:
                    return r.status, await r.json()

            good = {"id": "dock-b", "station": "s1", "kind": "dock", "command_key": "ab" * 32,
                    "mqtt_password": password_hash("pw")}
            rng = random.Random(7)
            ids: list[object] = [*HOSTILE_IDS, *(_random_id(rng) for _ in range(150))]
            admitted = []
            for dev in ids:
                status, answer = await register({**good, "id": dev})
                if device_id_problem(dev) is None:
                    assert status == 201, (dev, answer)
                    admitted.append(dev)
                else:
                    assert status == 400, (dev, status, answer)
                    assert answer["detail"], dev
            for key in HOSTILE_KEYS:
                status, _ = await register({**good, "id": "dock-k", "command_key": key})
                assert status == 400, key
            for h in HOSTILE_HASHES:
                status, _ = await register({**good, "id": "dock-h", "mqtt_password": h})
                assert status == 400, h
            keys_file = tmp_path / "device-keys.toml"
            devices = load_devices(keys_file)  # parses, whatever was tried
            assert set(devices) == set(admitted)
            assert all(device_id_problem(d) is None for d in devices)
            tomllib.loads(keys_file.read_text())
            # The broker's password file, as `huimin broker` writes it: one line per account.
            accounts = Accounts("t")
            accounts.devices = {d: e["mqtt_password"] for d, e in devices.items()}
            assert len(accounts.passwd().splitlines()) == len(devices)

            # An existing device: 409, its key unchanged; re-keyed only when asked.
            assert (await register(good))[0] == 201
            status, answer = await register({**good, "command_key": "cd" * 32})
            assert (status, answer["error"]) == (409, "exists")
            assert load_devices(keys_file)["dock-b"]["command_key"] == "ab" * 32
            status, _ = await register({**good, "command_key": "cd" * 32, "replace": True})
            assert status == 201
            assert load_devices(keys_file)["dock-b"]["command_key"] == "cd" * 32
            assert svc.keys.has("dock-b")
    run(main())
