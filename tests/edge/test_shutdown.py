"""The edge exits on SIGTERM even when a task outlives its first cancel (as a
reconnect loop does when a library turns the cancel into its own error)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge.runtime import _shutdown_watch
from tests.conftest import run


class _LibraryError(Exception):
    pass


async def _stubborn_loop(cancels: list[int]) -> None:
    """A reconnect loop whose library raised its own error on the first cancel."""
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancels.append(1)
            if len(cancels) == 1:
                continue  # swallowed, as `except MqttError` did
            raise


def test_a_task_that_swallows_its_cancel_is_named_and_cancelled_again(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[int]:
        cancels: list[int] = []
        stubborn = asyncio.create_task(_stubborn_loop(cancels), name="stubborn-uplink")
        polite = asyncio.create_task(asyncio.sleep(10), name="polite")
        await asyncio.sleep(0)
        stubborn.cancel()
        polite.cancel()
        async with asyncio.timeout(10):  # bounds a hang, not a speed
            await _shutdown_watch([stubborn, polite], grace_s=0.1)
        assert stubborn.cancelled() and polite.cancelled()
        return cancels

    with caplog.at_level(logging.ERROR, logger="edge"):
        assert run(main()) == [1, 1]
    stuck = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert len(stuck) == 1 and "stubborn-uplink" in stuck[0] and "test_shutdown.py" in stuck[0]


def test_the_mqtt_reconnect_loop_does_not_swallow_a_cancel() -> None:
    from edge.netutil import raise_if_cancelling

    async def loop() -> None:
        while True:
            try:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    raise _LibraryError("disconnect timed out") from None
            except _LibraryError:
                raise_if_cancelling()
            await asyncio.sleep(0)

    async def main() -> bool:
        t = asyncio.create_task(loop())
        await asyncio.sleep(0)
        t.cancel()
        async with asyncio.timeout(10):
            with pytest.raises(asyncio.CancelledError):
                await t
        return t.cancelled()

    assert run(main())
