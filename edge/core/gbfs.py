"""GBFS feeds, v2.3 and v3.0 side by side, built from the live station state.
Pure functions: (config, state, clock) in, JSON-ready dicts out (station_status also as
its bytes, from a cache of each station's entry); edge/adapters/http/server.py serves and
caches them. Where the feeds go beyond the schemas (Chinese and English names,
the coalesced status), each builder below says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from edge.config import EdgeConfig
from edge.core.stations import StationStatus

VERSIONS = ("2.3", "3.0")
FEEDS = ("gbfs", "gbfs_versions", "system_information", "vehicle_types",
         "station_information", "station_status")
LANGS = ("zh-CN", "en")
VEHICLE_TYPE = "bike"
STATIC = {"gbfs", "gbfs_versions", "system_information", "vehicle_types", "station_information"}


def _ts(version: str, t: float) -> int | str:
    if version == "2.3":
        return int(t)
    return datetime.fromtimestamp(int(t), UTC).isoformat().replace("+00:00", "Z")


def _text(zh: str, en: str) -> list[dict[str, str]]:
    return [{"text": zh, "language": "zh-CN"}, {"text": en, "language": "en"}]


def feed_url(cfg: EdgeConfig, version: str, feed: str, lang: str | None = None) -> str:
    base = cfg.base_url
    if version == "2.3" and lang == "en":
        return f"{base}/gbfs/2.3/en/{feed}.json"
    return f"{base}/gbfs/{version}/{feed}.json"


def build(cfg: EdgeConfig, version: str, feed: str, statuses: list[StationStatus],
          last_updated: float) -> dict[str, Any]:
    """One feed document; `lang` variants of v2.3 differ only in names."""
    return build_lang(cfg, version, feed, statuses, last_updated, "zh-CN")


def build_lang(cfg: EdgeConfig, version: str, feed: str, statuses: list[StationStatus],
               last_updated: float, lang: str) -> dict[str, Any]:
    if version not in VERSIONS or feed not in FEEDS:
        raise KeyError(f"{version}/{feed}")
    ttl = cfg.static_ttl_s if feed in STATIC else cfg.status_ttl_s
    data = _DATA[feed](cfg, version, statuses, lang)
    return {"last_updated": _ts(version, last_updated), "ttl": ttl, "version": version,
            "data": data}


def _gbfs(cfg: EdgeConfig, version: str, st: list[StationStatus], lang: str) -> dict[str, Any]:
    names = [f for f in FEEDS if f != "gbfs"]
    if version == "3.0":
        return {"feeds": [{"name": n, "url": feed_url(cfg, version, n)} for n in FEEDS]}
    return {code: {"feeds": [{"name": n, "url": feed_url(cfg, version, n, code)}
                             for n in ["gbfs", *names]]}
            for code in ("zh", "en")}


def _versions(cfg: EdgeConfig, version: str, st: list[StationStatus],
              lang: str) -> dict[str, Any]:
    return {"versions": [{"version": v, "url": feed_url(cfg, v, "gbfs")} for v in VERSIONS]}


def _system(cfg: EdgeConfig, version: str, st: list[StationStatus], lang: str) -> dict[str, Any]:
    s = cfg.system
    if version == "2.3":
        en = lang == "en"
        d: dict[str, Any] = {"system_id": s.id, "language": "en" if en else "zh",
                             "name": s.name_en if en else s.name_zh,
                             "operator": s.operator_en if en else s.operator_zh,
                             "timezone": s.timezone, "email": s.email,
                             "license_url": s.license_url}
    else:
        d = {"system_id": s.id, "languages": list(LANGS), "name": _text(s.name_zh, s.name_en),
             "operator": _text(s.operator_zh, s.operator_en), "opening_hours": s.opening_hours,
             "feed_contact_email": s.email, "timezone": s.timezone, "license_url": s.license_url}
    if s.url:
        d["url"] = s.url
    if s.phone:
        d["phone_number"] = s.phone
    return d


def _vehicle_types(cfg: EdgeConfig, version: str, st: list[StationStatus],
                   lang: str) -> dict[str, Any]:
    vt: dict[str, Any] = {"vehicle_type_id": VEHICLE_TYPE, "form_factor": "bicycle",
                          "propulsion_type": "human"}
    if version == "2.3":
        vt["name"] = "Public bike" if lang == "en" else "公共自行车"
    else:
        vt["name"] = _text("公共自行车", "Public bike")
        vt["wheel_count"] = 2
    return {"vehicle_types": [vt]}


def _station_info(cfg: EdgeConfig, version: str, st: list[StationStatus],
                  lang: str) -> dict[str, Any]:
    cap = {s.station_id: s.capacity for s in st}
    out = []
    for s in cfg.stations:
        if version == "2.3":
            name: Any = s.name_en if lang == "en" else s.name_zh
        else:
            name = _text(s.name_zh, s.name_en)
        d: dict[str, Any] = {"station_id": s.id, "name": name, "lat": round(s.lat, 6),
                             "lon": round(s.lon, 6), "capacity": cap.get(s.id, 0),
                             "is_virtual_station": False}
        if s.address:
            d["address"] = s.address
        out.append(d)
    return {"stations": out}


def _station_status(cfg: EdgeConfig, version: str, st: list[StationStatus],
                    lang: str) -> dict[str, Any]:
    return {"stations": [station_status_entry(version, s) for s in st]}


# station -> (its status, its entry's JSON): a station's entry is encoded again
# only when its status is a new object (Stations makes one on each change).
EntryCache = dict[str, tuple[StationStatus, bytes]]


def station_status_json(cfg: EdgeConfig, version: str, statuses: list[StationStatus],
                        last_updated: float, cache: EntryCache) -> bytes:
    """station_status as the server sends it (the same document as build()'s,
    encoded): after one dock's event, the other 999 stations of a town are
    joined as they were encoded before (11 ms -> ~2 ms a rebuild at 1,000
    stations, gzip included; bench/latency.py)."""
    envelope = build_lang(cfg, version, "station_status", [], last_updated, "zh-CN")
    head, _, tail = json.dumps(envelope, ensure_ascii=False,
                               separators=(",", ":")).encode().rpartition(b"[]")
    parts = []
    for s in statuses:
        hit = cache.get(s.station_id)
        if hit is None or hit[0] is not s:
            hit = cache[s.station_id] = (s, json.dumps(
                station_status_entry(version, s), ensure_ascii=False,
                separators=(",", ":")).encode())
        parts.append(hit[1])
    return head + b"[" + b",".join(parts) + b"]" + tail


def station_status_entry(version: str, s: StationStatus) -> dict[str, Any]:
    """One station's entry in station_status (the server caches each one's JSON)."""
    bikes_key = "num_bikes_available" if version == "2.3" else "num_vehicles_available"
    disabled_key = "num_bikes_disabled" if version == "2.3" else "num_vehicles_disabled"
    return {
        "station_id": s.station_id,
        bikes_key: s.bikes_available,
        disabled_key: s.bikes_disabled,
        "vehicle_types_available": [{"vehicle_type_id": VEHICLE_TYPE,
                                     "count": s.bikes_available}],
        "num_docks_available": s.docks_available,
        "num_docks_disabled": s.docks_disabled,
        "is_installed": s.is_installed,
        "is_renting": s.is_renting,
        "is_returning": s.is_returning,
        "last_reported": _ts(version, s.last_reported),
    }


_DATA = {"gbfs": _gbfs, "gbfs_versions": _versions, "system_information": _system,
         "vehicle_types": _vehicle_types, "station_information": _station_info,
         "station_status": _station_status}
