"""GBFS v2.3 and v3.0 from a live simulated town: every document validates
against the official schemas (with the format checker), the cross-file rules
the schemas miss hold, and station_status matches the emulated slots after a
random rent/return sequence."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from jsonschema import Draft7Validator, FormatChecker

from edge.core import gbfs
from hardware.sim.town import Town
from tests.conftest import run, until

ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.@:/_-")


def _matches(town: Town) -> bool:
    assert town.edge is not None
    st = {s.station_id: s for s in town.edge.stations.statuses()}
    return all((st[d.station].bikes_available, st[d.station].docks_available)
               == (d.emulator.locked_bikes(), d.emulator.free_slots()) for d in town.docks)


async def _fetch(s: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with s.get(url) as r:
        assert r.status == 200, url
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.charset == "utf-8"
        doc: dict[str, Any] = await r.json()
        return doc


def _cross_file_rules(version: str, docs: dict[str, dict[str, Any]]) -> None:
    info = {s["station_id"]: s for s in docs["station_information"]["data"]["stations"]}
    status = {s["station_id"]: s for s in docs["station_status"]["data"]["stations"]}
    assert info.keys() == status.keys(), "station sets differ"
    types = {t["vehicle_type_id"] for t in docs["vehicle_types"]["data"]["vehicle_types"]}
    bikes_key = "num_bikes_available" if version == "2.3" else "num_vehicles_available"
    off_key = "num_bikes_disabled" if version == "2.3" else "num_vehicles_disabled"
    for sid, s in status.items():
        assert set(sid) <= ID_CHARS
        assert "num_docks_available" in s
        total = s[bikes_key] + s.get(off_key, 0) + s["num_docks_available"] + \
            s.get("num_docks_disabled", 0)
        assert total <= info[sid]["capacity"], (sid, s, info[sid])
        assert sum(v["count"] for v in s["vehicle_types_available"]) == s[bikes_key]
        assert {v["vehicle_type_id"] for v in s["vehicle_types_available"]} <= types
        for k in ("is_installed", "is_renting", "is_returning"):
            assert s[k] is True or s[k] is False
        if version == "2.3":
            assert isinstance(s["last_reported"], int) and 0 < s["last_reported"] <= \
                docs["station_status"]["last_updated"] + 1
        # An operating empty station still rents (nothing to rent, but open).
        if s[bikes_key] == 0 and s["is_installed"] and s["num_docks_available"]:
            assert s["is_renting"]
    for s in info.values():
        for k in ("lat", "lon"):
            assert round(s[k], 6) == s[k]
    if version == "3.0":
        langs = set(docs["system_information"]["data"]["languages"])
        for s in info.values():
            assert {n["language"] for n in s["name"]} == langs


def test_feeds_validate_and_match_emulated_slots(
        tmp_path: Path, gbfs_schemas: Callable[[str, str], dict[str, Any]]) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=3, slots=6, mqtt_share=0.34, seed=11, fill=0.5) as town:
            await town.wait_online()
            assert town.edge is not None
            rng = random.Random(4)
            riding: list[str] = []
            for _ in range(8):
                d = rng.choice(town.docks)
                before = town.edge.metrics.get("events.stored")
                if riding and rng.random() < 0.5:
                    if town.give_back(d, riding[-1]) is None:
                        continue
                    riding.pop()
                else:
                    bike = await town.rent(d)
                    if bike is None:
                        continue
                    riding.append(bike)
                await until(lambda b=before: town.edge.metrics.get("events.stored") > b)
            await until(lambda: _matches(town))
            base = f"http://127.0.0.1:{town.http_port}/gbfs"
            async with aiohttp.ClientSession() as s:
                for version in gbfs.VERSIONS:
                    docs = {f: await _fetch(s, f"{base}/{version}/{f}.json") for f in gbfs.FEEDS}
                    for feed, doc in docs.items():
                        v = Draft7Validator(gbfs_schemas(version, feed),
                                            format_checker=FormatChecker())
                        errors = sorted(v.iter_errors(doc), key=str)
                        assert not errors, f"{version}/{feed}: {errors[0]}"
                    _cross_file_rules(version, docs)
                    listed = {f["name"] for f in (docs["gbfs"]["data"]["feeds"] if version == "3.0"
                                                  else docs["gbfs"]["data"]["zh"]["feeds"])}
                    assert listed >= set(gbfs.FEEDS) - {"gbfs"}
                    bikes_key = "num_bikes_available" if version == "2.3" else \
                        "num_vehicles_available"
                    got = {x["station_id"]: (x[bikes_key], x["num_docks_available"])
                           for x in docs["station_status"]["data"]["stations"]}
                    want = {d.station: (d.emulator.locked_bikes(), d.emulator.free_slots())
                            for d in town.docks}
                    assert got == want
                en = await _fetch(s, f"{base}/2.3/en/station_information.json")
                assert en["data"]["stations"][0]["name"] == town.cfg.stations[0].name_en  # type: ignore[union-attr]
                # Cheap polling: ETag -> 304, gzip on request.
                url = f"{base}/3.0/station_status.json"
                async with s.get(url) as r:
                    etag = r.headers["ETag"]
                    assert r.headers["Last-Modified"]
                async with s.get(url, headers={"If-None-Match": etag}) as r:
                    assert r.status == 304
                async with s.get(url, headers={"Accept-Encoding": "gzip"},
                                 auto_decompress=False) as r:
                    assert r.headers["Content-Encoding"] == "gzip"
                async with s.get(f"{base}/3.0/nonsense.json") as r:
                    assert r.status == 404
    run(main())


def test_silent_station_stops_renting_instead_of_phantom_bikes(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=2, fill=0.75,
                        heartbeat_s=2) as town:
            await town.wait_online()
            assert town.edge is not None
            d = town.docks[0]
            await until(lambda: _matches(town))
            assert d.line is not None
            d.line.plugged = False  # the dock goes silent (cable cut, no Last Will on serial)
            await until(lambda: not town.edge.stations.statuses()[0].is_renting, 20)
            st = town.edge.stations.statuses()[0]
            assert st.bikes_available == 0 and not st.is_returning
            assert st.bikes_disabled == d.emulator.locked_bikes()
            d.line.plugged = True
            await until(lambda: town.edge.stations.statuses()[0].is_renting, 20)
    run(main())
