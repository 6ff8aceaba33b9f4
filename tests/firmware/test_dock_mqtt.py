"""A dock's real firmware under MicroPython on Wi-Fi: its own MQTT client
against a real Mosquitto started for the test, with the edge on the far side."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.conftest import needs_mosquitto, run, until
from hardware.sim.town import Town

pytestmark = needs_mosquitto


def test_rent_return_and_last_will_over_mqtt(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=1, seed=7, fill=0.5) as town:
            await town.wait_online()
            edge = town.edge
            assert edge is not None
            d = town.docks[0]
            assert edge.registry.devices[d.dev].transport == "mqtt"
            bike = await town.rent(d)
            assert bike is not None

            async def both() -> list[tuple[object, object]]:
                evs = await edge.store.events()
                return [(e["kind"], e["bike"]) for e in reversed(evs)]
            await until(lambda: _len(both, 1))  # a rider takes seconds, not the 20 ms scan
            town.give_back(d, bike)
            assert await until(lambda: _len(both, 2)) and await both() == [
                ("rented", bike), ("returned", bike)]
            await until(lambda: edge.stations.statuses()[0].bikes_available
                        == d.emulator.locked_bikes())
            assert edge.stations.statuses()[0].is_renting
            # The dock dies without a goodbye: the broker publishes its Last Will.
            assert d.proc is not None
            d.proc.send_signal(signal.SIGKILL)
            await until(lambda: not edge.stations.statuses()[0].is_renting, 10)
            st = edge.stations.statuses()[0]
            assert not st.is_returning and st.bikes_available == 0
            assert st.bikes_disabled == d.emulator.locked_bikes()
            # ...and it comes back after its restart with a new birth.
            await until(lambda: edge.stations.statuses()[0].is_renting, 20)
            assert edge.registry.devices[d.dev].boot == 2
    run(main())


async def _len(fn, n):  # type: ignore[no-untyped-def]
    return len(await fn()) >= n
