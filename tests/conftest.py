"""Shared fixtures: a real Mosquitto per test that asks for it, the GBFS
schemas from ../shared (or $GBFS_SCHEMA_DIR), and a helper to drive a
simulated town from synchronous tests."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tools.broker import Broker, mosquitto_path

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def until(pred: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll a condition (behaviour, not speed: the timeout only bounds a hang)."""
    async with asyncio.timeout(timeout):
        while True:
            v = pred()
            if asyncio.iscoroutine(v):
                v = await v
            if v:
                return v
            await asyncio.sleep(0.05)


async def broker_for_dock_a(tmp_path: Path) -> tuple[Broker, str, str]:
    """A started Mosquitto of site "t" with two accounts: the edge's and dock-a's;
    returns it and their passwords (edge's, dock's)."""
    broker = Broker(tmp_path / "broker", site="t")
    edge_pw = broker.account("huimin-edge", "edge")
    dock_pw = broker.account("dock-a")
    await broker.start()
    return broker, edge_pw, dock_pw


needs_mosquitto = pytest.mark.skipif(mosquitto_path() is None,
                                     reason="mosquitto not installed (./scripts/bootstrap.sh)")


def schema_dir() -> Path | None:
    for cand in (os.environ.get("GBFS_SCHEMA_DIR"), ROOT.parent / "shared" / "gbfs-json-schema"):
        if cand and Path(cand).is_dir():
            return Path(cand)
    return None


@pytest.fixture
def gbfs_schemas() -> Callable[[str, str], dict[str, Any]]:
    d = schema_dir()
    if d is None:
        pytest.skip("GBFS schemas not found: this clone has no ../shared/gbfs-json-schema "
                    "and GBFS_SCHEMA_DIR is unset; schema validation skipped")

    def load(version: str, feed: str) -> dict[str, Any]:
        return json.loads((d / f"v{version}" / f"{feed}.json").read_text())  # type: ignore[no-any-return]

    return load
