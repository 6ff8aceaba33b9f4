"""`huimin sim --bench`: a new board on the technician's bench, inside a running
town. The lines the simulator prints for it are pasted as they stand (through
the real CLI): the blank board is flashed, provisioned, comes online at the
edge, passes its self-test and is back in service afterwards."""

from __future__ import annotations

import asyncio
import shlex
import shutil
from pathlib import Path

import pytest

from hardware.sim.town import Town
from tests.conftest import run, until
from tools.cli import main as cli

pytestmark = pytest.mark.skipif(shutil.which("socat") is None,
                                reason="socat is not installed (./run-tests installs it)")


def test_the_printed_lines_take_a_blank_board_into_service(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=2, mqtt_share=0, seed=3, bench=True) as town:
            await town.wait_online()
            bench, edge = town.bench, town.edge
            assert bench is not None and edge is not None
            assert not bench.booting_firmware()  # blank: a bare REPL answers
            lines = bench.practice(town.spec.site, f"http://127.0.0.1:{town.http_port}",
                                   town.dir / "technician-token", town.spec.ota_key)
            steps = {shlex.split(ln)[1]: shlex.split(ln)[1:] for ln in lines}
            assert list(steps) == ["flash", "provision", "console", "fleet", "diag"]

            assert await asyncio.to_thread(cli, steps["flash"]) == 0
            assert edge.registry.get(bench.dev) is None  # not provisioned: unknown
            # More slots than the board file has: refused before anything is registered.
            too_many = [*steps["provision"], "--slots", "33"]
            assert await asyncio.to_thread(cli, too_many) == 1
            assert "this board has 32 slots" in capsys.readouterr().err
            assert edge.registry.get(bench.dev) is None
            boots = bench.boots
            assert await asyncio.to_thread(cli, steps["provision"]) == 0
            # Reset: the board boots its firmware, and the edge hears it on its cable.
            await until(lambda: (d := edge.registry.get(bench.dev)) is not None and d.online,
                        30, "the bench board online")
            assert bench.boots > boots and bench.booting_firmware()
            assert await asyncio.to_thread(cli, steps["fleet"]) == 0
            assert bench.dev in capsys.readouterr().out

            # diag interrupts the firmware for its self-test, then resets it.
            boots = bench.boots
            assert await asyncio.to_thread(cli, steps["diag"]) == 0
            table = capsys.readouterr().out
            assert "slot 1 lock" in table and "slot 1 tag reader" in table, table
            assert "6 checks, 0 failed" in table, table
            await until(lambda: bench.boots > boots, 10, "the reset after diag")
            await until(lambda: edge.registry.get(bench.dev).online, 30,  # type: ignore[union-attr]
                        "the bench board back online")

    run(main())
