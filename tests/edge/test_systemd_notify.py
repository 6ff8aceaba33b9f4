"""The edge under systemd's notify protocol, on a real NOTIFY_SOCKET (a unix
datagram socket, as systemd binds one): READY=1 once it serves, WATCHDOG=1
pings with a STATUS line while the pipeline moves, STOPPING=1 on SIGTERM; a
hung stage (the store's writer stuck on its disk) stops the pings, so systemd
would restart the edge, and they resume when it moves again."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge.core.records import OutboxRecord
from tests.conftest import ROOT, run

WATCHDOG_USEC = 600_000  # 0.6 s: a ping every 0.2 s


@contextmanager
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    # A short path of its own: a unix socket's path is limited to 107 bytes.
    d = tempfile.mkdtemp(prefix="sd-")
    path = os.path.join(d, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    try:
        yield sock, path
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(d)


async def messages_until(sock: socket.socket, want: str, timeout: float = 20.0) -> list[str]:
    """Every datagram up to and including the first with a line `want`."""
    loop = asyncio.get_running_loop()
    got: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = (await loop.sock_recv(sock, 4096)).decode()
            got.append(msg)
            if any(line == want or line.startswith(want) for line in msg.split("\n")):
                return got


def _config(tmp: Path) -> Path:
    path = tmp / "edge.toml"
    path.write_text(f'[edge]\nsite = "t"\nhttp_port = 0\ndb = "{tmp / "edge.db"}"\n\n'
                    '[[stations]]\nid = "s1"\nname_zh = "一号站"\nlat = 30.6\nlon = 119.6\n'
                    'devices = ["dock-a"]\n')
    return path


def test_ready_watchdog_and_stopping_from_the_edge_process(tmp_path: Path) -> None:
    """`huimin edge` as systemd starts it: the environment names the socket."""
    async def main() -> None:
        with notify_socket() as (sock, path):
            env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
            with open(tmp_path / "edge.log", "wb") as out:  # noqa: ASYNC230 (instant)
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tools.cli", "edge", "--config",
                    str(_config(tmp_path)), env=env, cwd=ROOT, stdout=out, stderr=out)
            try:
                ready = await messages_until(sock, "READY=1")
                assert "STATUS=0/1 devices online" in ready[-1]
                pings: list[str] = []
                while len(pings) < 3:
                    pings += [m for m in await messages_until(sock, "WATCHDOG=1")
                              if "WATCHDOG=1" in m]
                assert "STATUS=" in pings[-1]
                proc.send_signal(signal.SIGTERM)
                await messages_until(sock, "STOPPING=1")
                assert await asyncio.wait_for(proc.wait(), 20) == 0, \
                    (tmp_path / "edge.log").read_text()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    run(main())


def test_a_hung_stage_stops_the_pings_until_it_moves(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.config import load
    from edge.runtime import Edge

    async def main() -> None:
        with notify_socket() as (sock, path):
            monkeypatch.setenv("NOTIFY_SOCKET", path)
            monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
            svc = Edge(load(_config(tmp_path)))
            stop = asyncio.Event()
            task = asyncio.create_task(svc.run(stop))
            disk = threading.Event()
            try:
                await messages_until(sock, "READY=1")
                await messages_until(sock, "WATCHDOG=1")
                # The store's disk stops answering: its writer thread blocks.
                write = svc.store._write

                def stuck(items: list[object]) -> list[bool]:
                    disk.wait()
                    return write(items)  # type: ignore[arg-type]

                monkeypatch.setattr(svc.store, "_write", stuck)
                svc.store.submit(OutboxRecord("status", "status:s1", "s1", "{}"))
                seen = await messages_until(sock, "STATUS=stalled: store-writer")
                pings_after_hang = 0
                for _ in range(5):  # five more checks: the pings stay away
                    msgs = await messages_until(sock, "STATUS=stalled")
                    pings_after_hang += sum("WATCHDOG=1" in m for m in msgs)
                assert pings_after_hang == 0, seen
                disk.set()  # the disk answers again: the writer commits, pings resume
                await messages_until(sock, "WATCHDOG=1")
            finally:
                disk.set()
                stop.set()
                await asyncio.wait_for(task, 20)
    run(main())
