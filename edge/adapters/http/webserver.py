"""Start an aiohttp application on host:port (0 = any free port) and report
the port it got: shared by the edge's HTTP server and the development backend."""

from __future__ import annotations

import ssl
from typing import Any

from aiohttp import web

# A connection that sends no complete request within this (idle, or trickling its
# headers) is closed: a page needs one request, a program a few a second.
IDLE_S = 15.0


async def serve(app: web.Application, host: str, port: int,
                shutdown_timeout: float = 2.0,
                tls: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout,
                           keepalive_timeout=IDLE_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    server: Any = site._server  # aiohttp has no public "bound port" for port 0
    return runner, server.sockets[0].getsockname()[1]
