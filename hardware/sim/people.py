"""The simulated town's people: riders who rent through the city's backend
and return bikes at another station, and villagers who swipe their ID cards
at kiosks. Fictional people only."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import aiohttp
from wire import idcard

from edge.runtime import Edge
from hardware.idcard_emulator import Card, fictional_card
from hardware.sim.backend import DevBackend
from hardware.sim.devices import SimDock, SimKiosk

log = logging.getLogger("sim")
RIDER_PATIENCE_S = 20.0  # a rider waits this long at the dock for the unlock
PROGRAMMES = ["耕地地力保护补贴", "良种补贴", "农资综合补贴", "城乡居民基础养老金", "低保金"]


class Riders:
    def __init__(self, rng: random.Random, docks: list[SimDock], backend: DevBackend | None,
                 backend_url: str, edge: Edge | None, site: str) -> None:
        self.site = site
        self.rng = rng
        self.docks = docks
        self.backend = backend
        self.backend_url = backend_url
        self.edge = edge

    async def rent(self, d: SimDock, slot: int | None = None) -> str | None:
        """A rider scans the dock's code: the city's backend issues a rental, the
        edge takes it (edge/app/rentals.py) and unlocks the slot, the rider
        takes the bike; returns its id, or None if the rental failed. A town
        without a backend has no riders' path: a technician unlocks directly."""
        if slot is None:
            choices = [i for i, s in enumerate(d.emulator.slots) if s.present and s.latched]
            if not choices:
                return None
            slot = self.rng.choice(choices)
        if self.backend is None:
            return await self.technician_unlock(d, slot)
        for _ in range(3):
            err = await self._rent_through_backend(d, slot)
            if err is None:
                return d.emulator.take_bike(slot)
            if err not in ("no_bike", "station_offline"):
                return None
            # The dock's slot report follows its last event by a moment: a rider
            # who sees the bike there scans again.
            await asyncio.sleep(0.3)
        return None

    async def _rent_through_backend(self, d: SimDock, slot: int) -> str | None:
        """None once the slot is unlocked for the rider, else why not."""
        assert self.backend is not None
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.backend_url}/api/rentals", json={
                    "site": self.site, "station": d.station, "slot": slot, "rider": "sim"},
                    headers={"Authorization": f"Bearer {self.backend.operator_token}"}) as r:
                if r.status != 201:
                    log.warning("rider at %s: the backend refused the rental (HTTP %d)",
                                d.station, r.status)
                    return "refused"
                rid = (await r.json())["rental_id"]
            try:
                async with asyncio.timeout(RIDER_PATIENCE_S):
                    while slot not in d.emulator.takeable():
                        async with http.get(f"{self.backend_url}/api/rentals/{rid}") as r:
                            got = await r.json()
                        if got["state"] == "failed":
                            err = str((got.get("result") or {}).get("err"))
                            log.info("rider at %s slot %d: rental failed (%s)", d.station,
                                     slot, err)
                            return err
                        await asyncio.sleep(0.02)
            except TimeoutError:
                log.info("rider at %s slot %d: gave up waiting for the unlock", d.station, slot)
                return "timeout"
        return None

    async def technician_unlock(self, d: SimDock, slot: int) -> str | None:
        """A technician at the dock unlocks a slot through the edge and takes the bike."""
        assert self.edge is not None
        res = await self.edge.command(d.dev, "unlock", slot=slot)
        if not res.ok:
            log.info("technician at %s slot %d: unlock refused (%s)", d.station, slot, res.err)
            return None
        await asyncio.sleep(0.05)
        return d.emulator.take_bike(slot)

    def give_back(self, d: SimDock, bike: str, slot: int | None = None) -> int | None:
        if slot is None:
            free = [i for i, s in enumerate(d.emulator.slots) if not s.present and not s.latched]
            if not free:
                return None
            slot = self.rng.choice(free)
        d.emulator.insert_bike(slot, bike)
        return slot

    async def ride(self, period: float = 1.5) -> None:
        """Random riders forever: rent at one station, return at another."""
        riding: list[str] = []
        while True:
            await asyncio.sleep(self.rng.uniform(0.3, period))
            d = self.rng.choice(self.docks)
            try:
                if riding and self.rng.random() < 0.5:
                    bike = riding.pop(self.rng.randrange(len(riding)))
                    if self.give_back(d, bike) is None:
                        riding.append(bike)
                else:
                    bike_or_none = await self.rent(d)
                    if bike_or_none:
                        riding.append(bike_or_none)
            except Exception as exc:  # a rider's bad luck must not end the simulation
                log.info("rider at %s: %s", d.station, exc)


class Villagers:
    def __init__(self, rng: random.Random, kiosks: list[SimKiosk], region_key: bytes,
                 backend: DevBackend | None, backend_url: str) -> None:
        self.rng = rng
        self.kiosks = kiosks
        self.region_key = region_key
        self.backend = backend
        self.backend_url = backend_url

    async def register(self, card: Card, records: list[dict[str, Any]] | None) -> str:
        """Register a fictional villager's fund records at the backend (by token)."""
        tok: str = idcard.token(self.region_key, card.id_number)
        if records and self.backend is not None:
            async with aiohttp.ClientSession() as s, s.post(
                    f"{self.backend_url}/api/funds", json={"token": tok, "records": records},
                    headers={"Authorization": f"Bearer {self.backend.operator_token}"}) as r:
                r.raise_for_status()
        return tok

    async def swipe(self, period: float = 4.0) -> None:
        """Scripted villagers at each kiosk: most have payments on record, some do
        not, now and then a card is lifted too early."""
        rng = self.rng
        people = []
        for _ in range(8):
            card = fictional_card(rng)
            recs = [{"programme": rng.choice(PROGRAMMES), "amount_fen": rng.randint(50, 3000) * 100,
                     "paid": f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}",
                     "status": "已发放"} for _ in range(rng.randint(1, 4))]
            await self.register(card, recs if rng.random() < 0.8 else None)
            people.append(card)
        while True:
            await asyncio.sleep(rng.uniform(period / 2, period))
            for k in self.kiosks:
                if k.module is None or k.screen is None:
                    continue
                k.module.fault = "pull_mid_read" if rng.random() < 0.1 else None
                k.module.place(rng.choice(people))
                await asyncio.sleep(rng.uniform(3, 6))
                log.info("%s shows: %s | %s %s", k.dev, k.screen.texts.get(0x1000, ""),
                         k.screen.texts.get(0x1600, ""), k.screen.texts.get(0x2600, ""))
                k.module.place(None)
