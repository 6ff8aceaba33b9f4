"""Start a private Mosquitto for the simulator and the tests, with the
project's broker settings: queues sized so a subscriber that falls behind
(or an edge that is away) never loses messages silently, persistence on."""

from __future__ import annotations

import asyncio
import getpass
import shutil
import socket
from pathlib import Path

CONF = """\
# Written by huimin (tools/broker.py). Mosquitto's defaults drop messages for a
# slow or absent subscriber with nothing in any log (max_queued_messages 1000);
# these limits make the broker hold a long outage's worth instead.
listener {port} 127.0.0.1
allow_anonymous true
# Started as root, Mosquitto switches to user "mosquitto" and then cannot write
# its persistence file or log here: sessions would not survive a restart.
user {user}
persistence true
persistence_location {dir}/
autosave_interval 5
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 100
set_tcp_nodelay true
message_size_limit 4096
log_dest file {dir}/mosquitto.log
log_type error
log_type warning
log_type notice
"""


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Broker:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.dir = workdir
        self.port = port or free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> None:
        exe = mosquitto_path()
        if exe is None:
            raise RuntimeError("mosquitto is not installed: run ./scripts/bootstrap.sh")
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "mosquitto.conf"
        conf.write_text(CONF.format(port=self.port, dir=self.dir, user=getpass.getuser()))
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

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
