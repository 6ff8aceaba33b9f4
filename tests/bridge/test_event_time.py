"""True event time: a dock stamps each event with when it happened, on the
edge's clock (learnt from the edge's "time" after its hello and from acks),
and the backend keeps that beside when the edge received it. A trip whose
return reaches the edge an hour late (the broker away, and an hour passing at
the edge meanwhile) still lasts what the ride lasted."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hardware.sim.town import Town
from tests.conftest import needs_mosquitto, run, until

pytestmark = needs_mosquitto


def test_a_trip_is_timed_by_the_docks_not_by_when_the_edge_heard(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=4, mqtt_share=1.0, seed=12, fill=0.5) as town:
            await town.wait_online()
            backend, broker = town.backend, town.broker
            assert backend is not None and broker is not None
            start, end = town.docks
            bike = await town.rent(start)
            assert bike is not None
            await until(lambda: any(e["type"] == "rented" and e["bike"] == bike
                                    for e in backend.events()), 20)
            # The broker goes away, and an hour passes at the edge meanwhile.
            await broker.stop()
            town.edge_clock.offset += 3600
            await asyncio.sleep(3)  # the ride
            assert town.give_back(end, bike) is not None  # journaled on the dock's flash
            await asyncio.sleep(1)
            await broker.start()
            await until(lambda: any(t["bike"] == bike for t in backend.trips()), 90)
            trip = next(t for t in backend.trips() if t["bike"] == bike)
            assert trip["clocks"] == ["dock", "dock"], trip
            assert 3 <= trip["seconds"] < 30, trip
            back = next(e for e in backend.events() if e["type"] == "returned"
                        and e["bike"] == bike)
            rent = next(e for e in backend.events() if e["type"] == "rented"
                        and e["bike"] == bike)
            assert back["received"] - rent["received"] > 3600  # what "at" used to be
    run(main())
