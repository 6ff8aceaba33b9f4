"""The city tier: a 3-node NATS cluster with JetStream (Debian's nats-server),
as a city runs it, started on this machine for `huimin city` and the tests.

Every client authenticates over TLS (the county CA's certificate). Each site
gets its own account, which may publish only under `city.<site>.` and read
only its own rentals; the backend's account owns the streams (docs/scaling.md
has the subjects, the streams and why this engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tools.broker import TlsFiles, free_port
from tools.ca import county_tls

log = logging.getLogger("sim.city")

# What a site may do, and no more: publish its own events, results and
# state; pull and ack its own rentals; hear JetStream's answers on its inbox.
SITE_RENTALS = "CITY_RENTALS"


def site_permissions(site: str) -> dict[str, dict[str, list[str]]]:
    durable = f"rentals-{site}"
    return {"publish": {"allow": [
        f"city.{site}.events", f"city.{site}.results", f"city.{site}.status.*",
        f"city.{site}.gbfs.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{SITE_RENTALS}.{durable}",
        f"$JS.API.CONSUMER.INFO.{SITE_RENTALS}.{durable}",
        f"$JS.ACK.{SITE_RENTALS}.{durable}.>"]},
        "subscribe": {"allow": [f"_INBOX_{site}.>"]}}


def nats_server_path() -> str | None:
    return shutil.which("nats-server") or (
        "/usr/bin/nats-server" if os.path.exists("/usr/bin/nats-server") else None)


@dataclass
class Node:
    name: str
    port: int
    cluster_port: int
    monitor_port: int
    dir: Path
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


@dataclass
class CityTier:
    dir: Path
    sites: list[str]
    size: int = 3
    tls: TlsFiles | None = None
    nodes: list[Node] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)  # user -> password

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.tls is None:
            self.tls = county_tls(self.dir / "ca", ["127.0.0.1", "localhost"])
        self.passwords["backend"] = secrets.token_urlsafe(18)
        for s in self.sites:
            self.passwords[f"site-{s}"] = secrets.token_urlsafe(18)
        self._route_password = secrets.token_urlsafe(18)
        for i in range(self.size):
            self.nodes.append(Node(f"city-{i + 1}", free_port(), free_port(), free_port(),
                                   self.dir / f"city-{i + 1}"))

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def ca(self) -> Path:
        assert self.tls is not None
        return self.tls.ca

    def _config(self, node: Node) -> str:
        assert self.tls is not None
        routes = [f"nats-route://route:{self._route_password}@127.0.0.1:{n.cluster_port}"
                  for n in self.nodes if n is not node]
        users: list[dict[str, object]] = [{"user": "backend",
                                           "password": self.passwords["backend"]}]
        users += [{"user": f"site-{s}", "password": self.passwords[f"site-{s}"],
                   "permissions": site_permissions(s)} for s in self.sites]
        # JSON is valid NATS configuration, and quotes every value safely.
        conf = {
            "server_name": node.name, "listen": f"127.0.0.1:{node.port}",
            "http": f"127.0.0.1:{node.monitor_port}",
            "tls": {"cert_file": str(self.tls.cert), "key_file": str(self.tls.key),
                    "timeout": 2},
            "jetstream": {"store_dir": str(node.dir / "js"), "max_memory_store": 64 << 20,
                          "max_file_store": 2 << 30},
            "cluster": {"name": "huimin-city", "listen": f"127.0.0.1:{node.cluster_port}",
                        "authorization": {"user": "route", "password": self._route_password},
                        "routes": routes,
                        # Clients keep to the addresses they were given (a site's
                        # list, through its relay in the simulator), not each
                        # node's own listen address.
                        "no_advertise": True},
            "authorization": {"users": users},
            "max_payload": 1 << 20,
            "logfile": str(node.dir / "nats.log"),
        }
        return json.dumps(conf, indent=2)

    async def start(self) -> None:
        """All nodes up and clustered, or none left running (an error says why). A
        port another process took between its pick and the node's bind (seen once in
        CI: a router port) is picked again, twice at most."""
        for attempt in range(3):
            try:
                await self._start_once()
                return
            except RuntimeError as exc:
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
            for node in self.nodes:
                node.port, node.cluster_port, node.monitor_port = (free_port(), free_port(),
                                                                   free_port())

    async def _start_once(self) -> None:
        try:
            for node in self.nodes:
                await self.start_node(node)
            await self.wait_ready()
            for node in self.nodes:  # wait_ready passes over a dead node (one killed on purpose)
                if not node.alive:
                    log_lines = (node.dir / "nats.log").read_text(errors="replace").splitlines()
                    raise RuntimeError(f"city tier: {node.name} did not start: "
                                       f"{log_lines[-1] if log_lines else '(no log)'}")
        except BaseException:
            await self.stop()
            raise

    async def start_node(self, node: Node) -> None:
        exe = nats_server_path()
        if exe is None:
            raise RuntimeError("nats-server is not installed (Debian: apt install nats-server;"
                               " ./run-tests installs it)")
        node.dir.mkdir(parents=True, exist_ok=True)
        conf = node.dir / "nats.conf"
        # Holds the accounts' passwords: the owner's only, never a command line.
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._config(node))
        node.proc = await asyncio.create_subprocess_exec(
            exe, "-c", str(conf), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)

    async def wait_ready(self, limit_s: float = 30.0) -> None:
        """Every live node answers, and JetStream has a meta leader that knows them all."""
        async with aiohttp.ClientSession() as s, asyncio.timeout(limit_s):
            for node in self.nodes:
                if not node.alive:
                    continue
                url = f"http://127.0.0.1:{node.monitor_port}/healthz?js-enabled-only=true"
                while True:
                    if not node.alive:
                        # Its last line says why (start() picks new ports for
                        # "address already in use": another process took one).
                        lines = (node.dir / "nats.log").read_text(
                            errors="replace").splitlines()
                        raise RuntimeError(f"{node.name} exited: "
                                           f"{lines[-1] if lines else '(no log)'}; see "
                                           f"{node.dir / 'nats.log'}")
                    with contextlib.suppress(aiohttp.ClientError):
                        async with s.get(url) as r:
                            if r.status == 200:
                                break
                    await asyncio.sleep(0.1)
            # Polling the monitor: the servers offer no event for an election.
            while not await self._has_meta_leader(s):  # noqa: ASYNC110
                await asyncio.sleep(0.2)

    async def _has_meta_leader(self, s: aiohttp.ClientSession) -> bool:
        """A meta leader that counts every live node among its current peers:
        before that, it cannot place a stream's replicas on them."""
        live = {n.name: n for n in self.nodes if n.alive}
        with contextlib.suppress(aiohttp.ClientError, ValueError, KeyError, TypeError):
            for node in live.values():
                async with s.get(f"http://127.0.0.1:{node.monitor_port}/jsz") as r:
                    leader = ((await r.json()).get("meta_cluster") or {}).get("leader")
                if leader in live:
                    async with s.get(f"http://127.0.0.1:{live[leader].monitor_port}/jsz") as r:
                        meta = (await r.json())["meta_cluster"]
                    current = {p["name"] for p in meta.get("replicas", []) if p.get("current")}
                    return set(live) - {leader} <= current
                return False
        return False

    async def kill(self, node: Node) -> None:
        """A node lost: SIGKILL, no goodbye to its peers."""
        if node.alive and node.proc is not None:
            node.proc.send_signal(signal.SIGKILL)
            await node.proc.wait()
            log.warning("city tier: %s killed", node.name)

    async def restart(self, node: Node) -> None:
        await self.start_node(node)
        log.warning("city tier: %s restarted", node.name)

    async def stop(self) -> None:
        for node in self.nodes:
            if node.alive and node.proc is not None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    async with asyncio.timeout(10):
                        await node.proc.wait()
                except TimeoutError:
                    node.proc.kill()
                    await node.proc.wait()
