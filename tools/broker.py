"""The Mosquitto a county runs, as files made from the device registry, and a
private one started with exactly those files for the simulator and the tests.

What the configuration says (docs/security.md):
- no anonymous clients; one account per device (made by `huimin provision`),
  one for the edge, one for the bridge; passwords stored hashed in Mosquitto's
  own PBKDF2-SHA512 format;
- an ACL under which a device may publish only its own uplink topics and read
  only its own downlink, and the edge and bridge get just what they use;
- a TLS listener for devices (the county CA's server certificate, tools/ca.py)
  and a plain listener on loopback only, for the edge on the same Pi;
- queues sized so a subscriber that falls behind (or an edge that is away)
  never loses messages silently, persistence on (../shared/mqtt.md).
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import hashlib
import os
import random
import secrets
import shutil
import signal
import socket
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from wire.names import (
    CITY_ALL,
    DOWN_LEAF,
    EDGE_PRESENCE,
    UP_LEAVES,
    city_topic,
    site_topics,
    topic,
)

CONF = """\
# Written by huimin (tools/broker.py) from the device registry; do not edit by
# hand: `huimin broker` writes it again after each provisioning.
# Each listener has its own accounts: the edge's exists only on loopback, so its
# password (a copied edge.toml) opens nothing from the village network.
per_listener_settings true
# The edge on this machine: plain MQTT, loopback only.
listener {port} 127.0.0.1
allow_anonymous false
password_file {dir}/passwd
acl_file {dir}/acl
# A client's id is its username, whatever id it asks for: one account cannot
# take over another's session (a dock's, or the edge's) by connecting as it.
use_username_as_clientid true
{tls}
# Started as root, Mosquitto switches to user "mosquitto" and then cannot write
# its persistence file or log here: sessions would not survive a restart.
user {user}
persistence true
persistence_location {data}/
autosave_interval 5
# Mosquitto's default (1000 messages a client) drops a short outage's traffic
# for an absent edge. Held instead, up to a bound (RAM on the Pi): about eight
# hours of a 2,000-dock site's reports for the edge, 32 MB at most. Beyond it
# the broker drops the newest and logs it; nothing a dock accepted is lost by
# that: each event stays in the dock's journal until the edge acks it.
max_queued_messages {queue_messages}
max_queued_bytes {queue_bytes}
# QoS 1 messages sent a client and not yet acknowledged. The edge acknowledges
# each only after its commit, so this window is what it can have in hand while
# a batch commits: 100 held a backlog's drain to ~17,000 events/s, 1,000 lets
# it overlap its decoding, its commit and the broker's sending (bench/ingest.py).
max_inflight_messages {in_flight}
set_tcp_nodelay true
message_size_limit 4096
log_dest file {data}/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
"""

TLS_LISTENER = """\
# Devices: TLS only, the server certificate signed by the county CA; every
# account but the edge's.
listener {port} {bind}
allow_anonymous false
password_file {dir}/passwd-tls
acl_file {dir}/acl
use_username_as_clientid true
cafile {ca}
certfile {cert}
keyfile {key}
tls_version tlsv1.2
"""


def password_hash(password: str, iterations: int = 101) -> str:
    """A password as Mosquitto 2's password file stores it ($7$: PBKDF2-SHA512,
    as mosquitto_passwd writes it), so no clear password lands on disk."""
    salt = secrets.token_bytes(12)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def new_password() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Accounts:
    """Who may connect, and what each may do. `role` picks the ACL."""
    site: str
    edge: dict[str, str] = field(default_factory=dict)  # username -> hash
    devices: dict[str, str] = field(default_factory=dict)
    bridges: dict[str, str] = field(default_factory=dict)  # a city broker's edges
    backends: dict[str, str] = field(default_factory=dict)  # a city broker's backend
    # Read-only monitoring of every device topic (a county's operations, or a
    # privacy audit); none is made unless asked for.
    monitors: dict[str, str] = field(default_factory=dict)

    def passwd(self, with_edge: bool = True) -> str:
        """The password file; without the edge's accounts for a listener beyond loopback."""
        rows = {**self.devices, **self.bridges, **self.backends, **self.monitors}
        if with_edge:
            rows.update(self.edge)
        return "".join(f"{u}:{h}\n" for u, h in sorted(rows.items()))

    def acl(self) -> str:
        s = self.site
        out = ["# Written by huimin (tools/broker.py). Anything not allowed here is denied.", ""]
        for u in sorted(self.edge):
            out += [f"user {u}", *(f"topic read {topic(s, '+', leaf)}" for leaf in UP_LEAVES),
                    f"topic write {topic(s, '+', DOWN_LEAF)}",
                    f"topic readwrite {topic(s, EDGE_PRESENCE, 'status')}", ""]
        for u in sorted(self.bridges):  # u is "bridge-<site>"
            site = u.removeprefix("bridge-")
            out += [f"user {u}", f"topic write {city_topic(site, 'events')}",
                    f"topic write {city_topic(site, 'status/+')}",
                    f"topic write {city_topic(site, 'rentals/results')}",
                    f"topic write {city_topic(site, 'gbfs/#')}",
                    f"topic read {city_topic(site, 'rentals/new')}", ""]
        for u in sorted(self.monitors):
            out += [f"user {u}", f"topic read {site_topics(s)}", ""]
        for u in sorted(self.backends):
            out += [f"user {u}", f"topic read {CITY_ALL}",
                    f"topic write {city_topic('+', 'rentals/new')}", ""]
        # Every other account is a device, and %u its id: its own topics only.
        out += ["# devices (username = device id)",
                *(f"pattern write {topic(s, '%u', leaf)}" for leaf in UP_LEAVES),
                f"pattern read {topic(s, '%u', DOWN_LEAF)}", ""]
        return "\n".join(out)


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def free_port() -> int:
    """A free port for a listener started next (a broker, a node, a test's
    edge), taken below the kernel's ephemeral range: a port the kernel handed
    out for port 0 may be handed out again, for an outgoing connection, before
    the listener binds it (seen: a NATS node's monitor port taken so, and the
    node exited)."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        # Not one handed out lately: two picks before either listener binds are
        # both free, and were once the same (a broker's plain and TLS listeners
        # on one port: it exited, "Address already in use").
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.append(port)
            return port
    raise OSError("no free port below the ephemeral range")


_handed_out: deque[int] = deque(maxlen=1000)  # free_port's last answers in this process


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


QUEUE_MESSAGES = 200_000  # a client's queue while it is away (see CONF)
QUEUE_BYTES = 32 * 1024 * 1024
IN_FLIGHT = 1000  # max_inflight_messages (see CONF)


def write_config(dir: Path, accounts: Accounts, port: int, tls_port: int | None = None,
                 tls: TlsFiles | None = None, bind: str = "127.0.0.1",
                 user: str | None = None, data: Path | None = None,
                 queue: tuple[int, int] = (QUEUE_MESSAGES, QUEUE_BYTES)) -> Path:
    """mosquitto.conf, passwd (0600) and acl in `dir`, persistence and log in
    `data` (default: `dir`); returns the .conf."""
    from edge.adapters.device_keys import write_private

    dir.mkdir(parents=True, exist_ok=True)
    write_private(dir / "passwd", accounts.passwd())
    write_private(dir / "passwd-tls", accounts.passwd(with_edge=False))
    (dir / "acl").write_text(accounts.acl())
    tls_text = ""
    if tls is not None and tls_port is not None:
        tls_text = TLS_LISTENER.format(port=tls_port, bind=bind, ca=tls.ca, cert=tls.cert,
                                       key=tls.key, dir=dir)
    conf = dir / "mosquitto.conf"
    conf.write_text(CONF.format(port=port, dir=dir, tls=tls_text, data=data or dir,
                                user=user or getpass.getuser(), queue_messages=queue[0],
                                queue_bytes=queue[1], in_flight=IN_FLIGHT))
    return conf


class Broker:
    """A private Mosquitto running the county configuration (write_config):
    the simulator's, the tests' and the benchmarks'. Accounts can be added
    while it runs (it rereads passwd and acl on SIGHUP, as on a Pi)."""

    def __init__(self, workdir: Path, port: int | None = None, site: str = "anji",
                 tls: TlsFiles | None = None,
                 queue: tuple[int, int] = (QUEUE_MESSAGES, QUEUE_BYTES)) -> None:
        self.dir = workdir
        self.queue = queue  # (messages, bytes) held for a client while it is away
        self.port = port or free_port()
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None
        self.accounts = Accounts(site)
        self.proc: asyncio.subprocess.Process | None = None
        self.stopped = False  # stopped on purpose (not a crash a supervisor restarts)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def account(self, username: str, role: str = "device", password: str | None = None) -> str:
        """Make an account; returns its password (kept by the caller, not here)."""
        password = password or new_password()
        table = {"device": self.accounts.devices, "edge": self.accounts.edge,
                 "bridge": self.accounts.bridges, "backend": self.accounts.backends,
                 "monitor": self.accounts.monitors}[role]
        table[username] = password_hash(password)
        return password

    def add_hashed(self, username: str, hashed: str) -> None:
        self.accounts.devices[username] = hashed

    def _write(self) -> Path:
        return write_config(self.dir, self.accounts, self.port, self.tls_port, self.tls,
                            queue=self.queue)

    async def start(self) -> None:
        exe = mosquitto_path()
        if exe is None:
            raise RuntimeError("mosquitto is not installed: run ./scripts/bootstrap.sh")
        conf = self._write()
        self.stopped = False
        self.proc = await asyncio.create_subprocess_exec(
            exe, "-c", str(conf), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        for _ in range(200):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return
            except OSError:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"mosquitto exited: see {self.dir}/mosquitto.log") from None
                await asyncio.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    async def reload(self) -> None:
        """Reread passwd and acl (after account()): wait until the log says so."""
        log = self.dir / "mosquitto.log"
        before = log.read_text().count("Reloading config") if log.exists() else 0
        if self.proc is not None and self.proc.returncode is None:
            self._write()
            self.proc.send_signal(signal.SIGHUP)
            for _ in range(200):
                if log.exists() and log.read_text().count("Reloading config") > before:
                    return
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.stopped = True
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
