"""The GBFS builders (edge/core/gbfs.py) with plain values: whatever the
docks report (any slot string at any station, docks online or not), every
feed of both versions validates against the official schemas (where this
clone has them beside it, ../shared/gbfs-json-schema), the cross-file rules
the schemas miss hold, and each station's counts are its slots' counts. The
same feeds served by a live town: tests/edge/test_gbfs.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, FormatChecker

from edge.config import StationConfig, parse
from edge.core import gbfs
from edge.core.stations import Stations
from tests.conftest import schema_dir
from tests.edge.test_gbfs import _cross_file_rules

PLACES = (StationConfig("s1", "昌硕广场", "Changshuo Square", 30.63, 119.68, ("d1", "d2")),
          StationConfig("s2", "竹博园", "Bamboo Expo Park", 30.64, 119.67, ("d3",)),
          StationConfig("s3", "汽车站", "Bus Station", 30.65, 119.69, ("d4",)))
CFG = parse({"edge": {"site": "anji", "public_url": "https://gbfs.example.cn"},
             "stations": [{"id": s.id, "name_zh": s.name_zh, "name_en": s.name_en,
                           "lat": s.lat, "lon": s.lon, "devices": list(s.devices)}
                          for s in PLACES]}, Path("/nonexistent"))
SLOT = st.sampled_from("LEXBFDU")
T0 = 1_796_000_000.0  # 2026-11-30 00:53:20 UTC


def _validators() -> Callable[[str, str], Draft7Validator] | None:
    import json
    root = schema_dir()
    if root is None:
        return None

    def get(version: str, feed: str) -> Draft7Validator:
        schema = json.loads((root / f"v{version}" / f"{feed}.json").read_text())
        return Draft7Validator(schema, format_checker=FormatChecker())
    return get


VALIDATE = _validators()


@settings(max_examples=60, deadline=None)
@given(reports=st.dictionaries(st.sampled_from(["d1", "d2", "d3", "d4"]),
                               st.tuples(st.text(SLOT, max_size=12), st.booleans())))
def test_any_report_gives_feeds_that_validate_and_count_the_slots(
        reports: dict[str, tuple[str, bool]]) -> None:
    stations = Stations(PLACES, T0)
    for dev, (slots, online) in reports.items():
        stations.apply_state(dev, 1, 0, slots, T0 + 1)
        stations.set_online(dev, online, T0 + 1)
    statuses = stations.statuses()
    for version in gbfs.VERSIONS:
        docs = {f: gbfs.build(CFG, version, f, statuses, T0 + 2) for f in gbfs.FEEDS}
        if VALIDATE is not None:
            for feed, doc in docs.items():
                errors = [e.message for e in VALIDATE(version, feed).iter_errors(doc)]
                assert not errors, (version, feed, errors[:3])
        _cross_file_rules(version, docs)
        bikes = "num_bikes_available" if version == "2.3" else "num_vehicles_available"
        got = {s["station_id"]: s for s in docs["station_status"]["data"]["stations"]}
        for place in PLACES:
            live = [reports[d][0] for d in place.devices if d in reports and reports[d][1]]
            assert got[place.id][bikes] == sum(s.count("L") for s in live), (place.id, reports)
            assert got[place.id]["num_docks_available"] == sum(s.count("E") for s in live)


def test_names_come_in_both_languages_where_each_version_puts_them() -> None:
    statuses = Stations(PLACES, T0).statuses()
    v3 = gbfs.build(CFG, "3.0", "station_information", statuses, T0)
    assert v3["data"]["stations"][0]["name"] == [
        {"text": "昌硕广场", "language": "zh-CN"}, {"text": "Changshuo Square", "language": "en"}]
    en = gbfs.build_lang(CFG, "2.3", "station_information", statuses, T0, "en")
    assert en["data"]["stations"][0]["name"] == "Changshuo Square"
    index = gbfs.build(CFG, "2.3", "gbfs", statuses, T0)["data"]
    assert index["en"]["feeds"][0]["url"] == "https://gbfs.example.cn/gbfs/2.3/en/gbfs.json"
    assert gbfs.build(CFG, "3.0", "station_status", statuses, T0)["last_updated"] == \
        "2026-11-30T00:53:20Z"


@settings(max_examples=80, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(["d1", "d2", "d3", "d4"]),
                                  st.text(SLOT, max_size=12), st.booleans()), max_size=12))
def test_station_status_from_cached_entries_is_the_document_built_whole(
        changes: list[tuple[str, str, bool]]) -> None:
    """After each change, the served bytes (each station's entry encoded only when
    it changed) are the very document build() makes, every station current."""
    stations = Stations(PLACES, T0)
    caches: dict[str, gbfs.EntryCache] = {v: {} for v in gbfs.VERSIONS}
    now: dict[str, tuple[str, bool]] = {}
    for n, (dev, slots, online) in enumerate(changes, 1):
        stations.apply_state(dev, 1, n, slots, T0 + n)
        stations.set_online(dev, online, T0 + n)
        now[dev] = (slots, online)
        statuses = stations.statuses()
        for s, place in zip(statuses, PLACES, strict=True):  # each status current, not cached
            live = [now[d][0] for d in place.devices if d in now and now[d][1]]
            assert s.bikes_available == sum(x.count("L") for x in live)
        for version in gbfs.VERSIONS:
            served = gbfs.station_status_json(CFG, version, statuses, T0 + n, caches[version])
            whole = gbfs.build(CFG, version, "station_status", statuses, T0 + n)
            assert json.loads(served) == whole
    assert all(len(c) <= len(PLACES) for c in caches.values())  # bounded by the stations
