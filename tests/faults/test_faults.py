"""Nothing lost whatever breaks: a small town with riders, one fault of each
kind the simulator injects (hardware/sim/faults.py), then the audit
(hardware/sim/audit.py) from the docks' own logs and journals, the edge's
database and the backend's records: every rent and return a dock accepted
reaches the backend, once. `pytest -m faults` runs just these."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hardware.sim.audit import audit, settle_and_audit
from hardware.sim.faults import KINDS, Fault, Injector
from hardware.sim.town import Town
from tests.conftest import needs_mosquitto, run

pytestmark = [pytest.mark.faults, needs_mosquitto]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_accepted_event_reaches_the_backend_once(tmp_path: Path, kind: str) -> None:
    async def main() -> None:
        # The board's faults (its Wi-Fi, its watchdog) on the board's own hal.
        board = "esp32s3" if kind in ("wifi_drop", "loop_stall") else "unix"
        async with Town(tmp_path, docks=3, slots=6, mqtt_share=0.67, seed=31, fill=0.5,
                        heartbeat_s=2, edge_process=kind == "edge_kill", board=board) as town:
            await town.wait_online(30)
            injector = Injector(town, seed=5)
            riders = asyncio.create_task(town.riders(period=0.4))
            await injector.run([Fault(2.0, kind, 4.0)])
            await asyncio.sleep(4.0)  # riding on after the fault
            riders.cancel()
            a = await settle_and_audit(town)
            print(f"{kind}: {injector.done[0] if injector.done else '-'}; accepted "
                  f"{len(a.accepted)}, at the edge {len(a.at_edge & a.accepted)}, at the backend "
                  f"{len(a.at_backend & a.accepted)}, lost {len(a.lost)}, duplicated "
                  f"{a.duplicated}, resends dropped {a.duplicate_deliveries}, wrong stories "
                  f"{len(a.wrong)}")
            assert injector.done and "skipped" not in injector.done[0], injector.done
            assert len(a.accepted) >= 3, a.table()  # the riders did ride
            assert not a.lost and not a.duplicated and not a.in_flight, a.table()
            assert not a.wrong, a.table()  # every event tells what physically happened
            if kind == "edge_disk_full":
                assert town.edge is not None
                print("events refused while full:", town.edge.metrics.get("store.full"))
                assert not town.edge.alarms()  # room again: the alarm is gone
            for d in [*town.docks, *town.kiosks]:
                log = d.log_path.read_text(errors="replace")
                assert "MemoryError" not in log, f"{d.dev} ran out of heap during {kind}"
            if kind == "loop_stall":  # the ESP32 reset, its I/O expanders kept their power
                assert town.edge is not None
                assert not [e for e in await town.edge.store.events() if e["kind"] == "fault"], \
                    "the reset let go of the locks (the expander's latch written 0 at boot)"
            # The audit can fail: an event the backend lost is counted as lost.
            assert town.backend is not None
            town.backend.db.execute("DELETE FROM events WHERE key IN "
                                    "(SELECT key FROM events LIMIT 1)")
            assert len(audit(town.docks, town.dir / "edge.db", town.backend).lost) == 1
    run(main())
