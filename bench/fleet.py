"""The benchmarks' simulated docks as the county's setup knows them: each dock
has its own broker account and command key, connects over TLS with the county
CA, and seals every message with its key, exactly as the firmware does. So a
benchmark measures the secure setup a county runs, not a shortcut around it.
One asyncio loop holds every dock's connection (aiomqtt, no thread each)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from pathlib import Path
from types import TracebackType
from typing import Any

import aiomqtt
from wire import auth

from edge.adapters.device_keys import dump_devices, write_private
from tools.broker import Broker, password_hash
from tools.ca import county_tls


def mosquitto_sub_env(work: Path, user: str, password: str) -> dict[str, str]:
    """An environment in which mosquitto_sub reads its account from its own
    options file ($XDG_CONFIG_HOME/mosquitto_sub): no password in argv."""
    import os

    cfg = work / "xdg"
    cfg.mkdir(exist_ok=True)
    write_private(cfg / "mosquitto_sub", f"-u {user}\n-P {password}\n")
    return {**os.environ, "XDG_CONFIG_HOME": str(cfg)}


def secure_broker(work: Path, site: str) -> tuple[Broker, str]:
    """A broker with the county's files (CA, TLS for devices) and the edge's
    account; returns it (not started) and the edge's password."""
    tls = county_tls(work / "ca", ["127.0.0.1"])
    broker = Broker(work / "broker", site=site, tls=tls)
    return broker, broker.account("huimin-edge", "edge")


class Fleet:
    def __init__(self, broker: Broker, site: str, devices: list[str]) -> None:
        self.broker = broker
        self.site = site
        self.devices = devices
        self.key_hex = {d: secrets.token_hex(32) for d in devices}
        self.keys = {d: auth.Key(bytes.fromhex(k)) for d, k in self.key_hex.items()}
        self.passwords = {d: secrets.token_urlsafe(12) for d in devices}
        for d, p in self.passwords.items():
            broker.add_hashed(d, password_hash(p))
        self.clients: dict[str, aiomqtt.Client] = {}
        self._stack = contextlib.AsyncExitStack()
        self._tasks: set[asyncio.Task[None]] = set()

    def write_keys(self, path: Path) -> Path:
        """The edge's device-keys file for this fleet."""
        write_private(path, dump_devices({d: {"command_key": k}
                                          for d, k in self.key_hex.items()}))
        return path

    def seal(self, dev: str, msg: dict[str, Any]) -> bytes:
        data = json.dumps(msg, separators=(",", ":")).encode()
        return bytes(auth.seal(self.keys[dev], auth.UP, data))

    async def __aenter__(self) -> Fleet:
        port = self.broker.tls_port
        assert self.broker.tls is not None and port is not None
        tls = aiomqtt.TLSParameters(ca_certs=str(self.broker.tls.ca))

        async def one(dev: str) -> None:
            c = aiomqtt.Client("127.0.0.1", port, identifier=dev, username=dev,
                               password=self.passwords[dev], tls_params=tls, keepalive=300,
                               clean_session=True, max_inflight_messages=1000)
            await self._stack.enter_async_context(c)
            self.clients[dev] = c

        for i in range(0, len(self.devices), 100):  # TLS handshakes, 100 at a time
            await asyncio.gather(*(one(d) for d in self.devices[i:i + 100]))
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.flush()
        await self._stack.aclose()

    def publish(self, dev: str, leaf: str, msg: dict[str, Any], qos: int = 1,
                retain: bool = False) -> None:
        """Sealed and sent on the dock's own topic, in the background (flush()
        waits for every one)."""
        data = self.seal(dev, msg)
        t = asyncio.get_running_loop().create_task(self.clients[dev].publish(
            f"huimin/{self.site}/{dev}/{leaf}", data, qos=qos, retain=retain))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
