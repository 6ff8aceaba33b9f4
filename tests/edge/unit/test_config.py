"""edge.toml's schema (edge/config.py), checked over every table and every key it
declares, not a few examples: a default where a key is left out, its range kept at
both ends, a wrong type named in TOML's words, a misspelt key answered with the
right one, and the rules between keys."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest

from edge.config import (
    TABLES,
    ConfigError,
    EdgeSettings,
    Setting,
    parse,
)

# The smallest valid table of each kind: its required keys.
MINIMAL: dict[str, dict[str, Any]] = {
    "edge": {"site": "anji"},
    "system": {},
    "stations": {"id": "anji-001", "name_zh": "递铺街道", "lat": 30.6, "lon": 119.6,
                 "devices": ["dock-001"]},
    "serial": {"port": "/dev/ttyUSB0", "devices": ["dock-001"]},
    "mqtt": {"url": "mqtt://127.0.0.1:1883", "username": "huimin-edge", "password": "pw"},
    "uplinks": {"kind": "webhook", "url": "https://city.example/hook", "secret": "s" * 16},
    "kiosks": {"id": "kiosk-001", "lat": 30.6, "lon": 119.6},
}


def _file(table: str, values: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {"edge": dict(MINIMAL["edge"])}
    many = TABLES[table][1]
    raw[table] = [values] if many else values
    return raw


def _how(f: Any) -> Setting:
    s: Setting = f.metadata.get("setting", Setting())
    return s


def _keys() -> list[tuple[str, Any]]:
    return [(t, f) for t, (cls, _) in TABLES.items() for f in fields(cls) if _how(f).toml]


def test_the_minimal_file_of_every_table_loads(tmp_path: Path) -> None:
    for table, values in MINIMAL.items():
        parse(_file(table, {**MINIMAL[table], **values}), tmp_path)


def test_every_edge_setting_left_out_takes_its_one_declared_default(tmp_path: Path) -> None:
    cfg = parse({"edge": {"site": "anji"}}, tmp_path)
    for f in fields(EdgeSettings):
        if f.name == "site":
            continue
        got = getattr(cfg, f.name)
        if _how(f).beside_db:
            assert got == cfg.db.with_name(f.default.name), f.name
        elif _how(f).path and isinstance(f.default, Path):
            assert got == tmp_path / f.default, f.name
        else:
            assert got == f.default, f.name


def test_every_range_is_kept_at_both_ends(tmp_path: Path) -> None:
    checked = 0
    for table, f in _keys():
        how = _how(f)
        if how.lo is None or how.hi is None:
            continue
        whole = "int" in str(f.type)
        step = 1 if whole else 0.5
        for ok in (how.lo, how.hi):
            v = int(ok) if whole else float(ok)
            parse(_file(table, {**MINIMAL[table], f.name: v}), tmp_path)
        for bad in (how.lo - step, how.hi + step):
            v = int(bad) if whole else float(bad)
            where = f"{table}[0]." if TABLES[table][1] else f"{table}."
            with pytest.raises(ConfigError,
                               match=rf"^{re.escape(where + f.name)} must be {how.lo:g}\.\."):
                parse(_file(table, {**MINIMAL[table], f.name: v}), tmp_path)
        checked += 1
    assert checked >= 15  # the edge's numbers, the uplinks', the places'


def test_every_key_of_the_wrong_type_is_named_in_tomls_words(tmp_path: Path) -> None:
    for table, f in _keys():
        where = f"{table}[0]." if TABLES[table][1] else f"{table}."
        with pytest.raises(ConfigError) as e:
            parse(_file(table, {**MINIMAL[table], f.name: {"a": 1}}), tmp_path)
        assert str(e.value).startswith(f"{where}{f.name} must be "), str(e.value)
        assert str(e.value).endswith("not a table ([name] or {...})"), str(e.value)


def test_a_misspelt_key_anywhere_is_answered_with_the_right_one(tmp_path: Path) -> None:
    for table, f in _keys():
        if len(f.name) < 4:
            continue
        typo = f.name[:-1] if not f.name.endswith("_s") else f.name[:-2]  # heartbeat_timeout
        values = {k: v for k, v in MINIMAL[table].items() if k != f.name}
        where = f"{table}[0]." if TABLES[table][1] else f"{table}."
        with pytest.raises(ConfigError, match=rf"did you mean {re.escape(where + f.name)}\?"):
            parse(_file(table, {**values, typo: MINIMAL[table].get(f.name, 1)}), tmp_path)


def test_every_required_key_is_said_to_be_required(tmp_path: Path) -> None:
    for table, f in _keys():
        if f.default is not MISSING or f.default_factory is not MISSING or _how(f).fallback:
            continue
        values = {k: v for k, v in MINIMAL[table].items() if k != f.name}
        with pytest.raises(ConfigError, match=rf"{f.name} is required"):
            parse(_file(table, values), tmp_path)


def test_tables_placeholders_and_rules_between_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="statoins is not a table; did you mean stations"):
        parse({"edge": {"site": "anji"}, "statoins": []})
    with pytest.raises(ConfigError, match="stations must be a list of tables"):
        parse({"edge": {"site": "anji"}, "stations": {"id": "x"}})
    with pytest.raises(ConfigError, match="still the placeholder"):
        parse({"edge": {"site": "<your site>"}})
    with pytest.raises(ConfigError, match=r"edge\.site is required"):
        parse({})
    station = MINIMAL["stations"]
    with pytest.raises(ConfigError, match="device dock-001 is in stations a and b"):
        parse({"edge": {"site": "t"}, "stations": [{**station, "id": "a"},
                                                    {**station, "id": "b"}]})
    with pytest.raises(ConfigError, match="lat and lon go together"):
        parse(_file("kiosks", {"id": "kiosk-001", "lat": 30.0}))
    with pytest.raises(ConfigError, match=r"tls_cert and edge\.tls_key go together"):
        parse({"edge": {"site": "t", "tls_cert": "c.pem"}})
    with pytest.raises(ConfigError, match="does not suit a webhook uplink"):
        parse(_file("uplinks", {**MINIMAL["uplinks"], "url": "mqtts://city"}))
    # A fallback: a station's English name is its id, an uplink's name its kind.
    cfg = parse({"edge": {"site": "t"}, "stations": [station],
                 "uplinks": [MINIMAL["uplinks"]]})
    assert cfg.stations[0].name_en == "anji-001" and cfg.uplinks[0].name == "webhook"
    assert cfg.mqtt is None and cfg.kiosks == ()
