"""A site's way to the city tier as a plain TCP relay that a fault can cut:
every connection through it dropped and new ones refused, as when a county's
4G uplink or fibre goes down. TLS passes through untouched (the edge still
checks the node's certificate end to end)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger("sim.relay")


class Relay:
    def __init__(self, target_port: int, name: str) -> None:
        self.target_port = target_port
        self.name = name
        self.port = 0
        self.cut = False
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()  # the node is down: the client sees it as the node would
            return
        self._writers |= {writer, up_w}
        a = asyncio.create_task(self._pipe(reader, up_w), name=f"relay:{self.name}:up")
        b = asyncio.create_task(self._pipe(up_r, writer), name=f"relay:{self.name}:down")
        self._pipes |= {a, b}
        for t in (a, b):
            t.add_done_callback(self._pipes.discard)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(w)
            w.close()

    def set_cut(self, cut: bool) -> None:
        self.cut = cut
        if cut:
            for w in list(self._writers):
                w.transport.abort()  # no FIN handshake: a dead line, not a goodbye
            self._writers.clear()

    async def stop(self) -> None:
        self.set_cut(True)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        for t in list(self._pipes):
            t.cancel()
