"""A simulated city: N sites (towns), each with its own docks, broker,
database and edge, feeding one city backend through the city tier, a 3-node
NATS JetStream cluster (hardware/sim/city_tier.py).

    async with City(tmp, sites=3, docks=2) as city:
        await city.wait_online()
        bike = await city.towns[0].rent(city.towns[0].docks[0])
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
from pathlib import Path
from typing import Any

from hardware.sim.backend import DevBackend
from hardware.sim.city_backend import CityLink
from hardware.sim.city_tier import CityTier
from hardware.sim.edge_setup import CityAccess
from hardware.sim.relay import Relay
from hardware.sim.town import Town

log = logging.getLogger("sim.city")

# Huzhou's counties and districts first, then numbered towns.
NAMES = ("anji", "deqing", "changxing", "wuxing", "nanxun")


def site_names(n: int) -> list[str]:
    return [NAMES[i] if i < len(NAMES) else f"town{i + 1}" for i in range(n)]


class City:
    def __init__(self, workdir: Path, sites: int = 3, backend_port: int = 0,
                 **town_options: Any) -> None:
        self.dir = workdir
        self.site_ids = site_names(sites)
        self.backend_port = backend_port
        self.town_options = town_options
        self.keys = {s: secrets.token_urlsafe(24) for s in self.site_ids}
        self.tier: CityTier | None = None
        self.backend: DevBackend | None = None
        self.link: CityLink | None = None
        self.backend_url = ""
        self.towns: list[Town] = []
        self.relays: dict[str, list[Relay]] = {}  # site -> its lines to each node

    async def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in ("backend.db", "backend.db-wal", "backend.db-shm"):
            (self.dir / stale).unlink(missing_ok=True)
        self.tier = tier = CityTier(self.dir / "city-tier", self.site_ids)
        await tier.start()
        self.backend = DevBackend(self.dir / "backend.db", self.keys)
        self.backend_url = await self.backend.start(port=self.backend_port)
        self.link = CityLink(self.backend, tier.urls, tier.ca, tier.passwords["backend"],
                             self.keys)
        await self.link.start()
        for i, site in enumerate(self.site_ids):
            relays = self.relays[site] = [Relay(n.port, f"{site}->{n.name}") for n in tier.nodes]
            urls = [f"tls://127.0.0.1:{await r.start()}" for r in relays]
            access = CityAccess(self.backend, self.backend_url, urls, tier.ca,
                                tier.passwords[f"site-{site}"], self.keys[site])
            options = {"kiosks": 0, "http_port": 0, **self.town_options, "site": site}
            if options.get("seed") is not None:
                options["seed"] = int(options["seed"]) + i
            town = Town(self.dir / site, city=access, **options)
            self.towns.append(town)
            await town.start()
            assert town.cfg is not None
            self.backend.site_stations[site] = {st.id for st in town.cfg.stations}
            self.backend.site_devices[site] = {d for st in town.cfg.stations
                                               for d in st.devices}
            self.backend.gbfs_systems[site] = (town.cfg.system.id,
                                               f"http://127.0.0.1:{town.http_port}")

    async def wait_online(self, limit_s: float = 30.0) -> None:
        await asyncio.gather(*(t.wait_online(limit_s) for t in self.towns))

    def cut(self, site: str, cut: bool = True) -> None:
        """The site's uplink down (every connection to the tier dropped, new
        ones refused) or back."""
        for r in self.relays[site]:
            r.set_cut(cut)

    async def riders(self, period: float = 1.5) -> None:
        async with asyncio.TaskGroup() as tg:
            for t in self.towns:
                tg.create_task(t.riders(period), name=f"riders:{t.spec.site}")

    async def stop(self) -> None:
        for town in reversed(self.towns):
            with contextlib.suppress(Exception):
                await town.stop()
        for relays in self.relays.values():
            for r in relays:
                await r.stop()
        if self.link is not None:
            await self.link.stop()
        if self.backend is not None:
            await self.backend.stop()
        if self.tier is not None:
            await self.tier.stop()

    async def __aenter__(self) -> City:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is not None:
            for t in self.towns:
                t.dump_logs()
            if self.link is not None:
                with contextlib.suppress(Exception):  # a report, not a second failure
                    async with asyncio.timeout(15):
                        print(await self.link.report(), file=sys.stderr)
            for node in self.tier.nodes if self.tier else []:
                log_path = node.dir / "nats.log"
                if log_path.is_file():
                    tail = log_path.read_text(errors="replace").splitlines()[-40:]
                    print(f"----- {node.name}: {log_path} -----\n" + "\n".join(tail),
                          file=sys.stderr)
        await self.stop()
