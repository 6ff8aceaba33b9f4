"""Long-running commands (the edge, the development backend) stop cleanly on
SIGINT and SIGTERM, as systemd and Ctrl-C send them."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


def run_until_signal(work: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run work(stop) in a new event loop; SIGINT/SIGTERM set `stop`."""
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await work(stop)

    asyncio.run(main())
