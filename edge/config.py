"""Edge configuration: a TOML file, declared here table by table (types, defaults,
ranges and rules written once) and checked at load. `huimin sim` writes one for its
simulated town; a deployment keeps one in /etc/huimin/edge.toml (see docs/deploy.md)."""

from __future__ import annotations

import datetime
import difflib
import re
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, cast, get_args, get_origin, get_type_hints
from urllib.parse import urlparse

T = TypeVar("T")


class ConfigError(Exception):
    """The configuration file is wrong: fix it; the service does not start."""


_ID = re.compile(r"^[A-Za-z0-9.@:/_-]{1,64}$")  # a station's id (GBFS: printable)
# One rule for the ids of devices and sites everywhere (this file, registration over the
# API, MQTT topics, the secrets files): lower-case letters, digits and '-', 64 at most.
# Nothing an id holds can then reach past its topic level, a TOML key or a log line.
DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
ID_RULE = "lower-case letters, digits and '-' (64 at most, not starting with '-')"
# The edge's own broker accounts and the city's: a device may never be named as one.
RESERVED_ID_PREFIXES = ("huimin", "bridge-", "backend", "edge")


def device_id_problem(dev: object) -> str | None:
    """Why `dev` cannot name a device, or None."""
    if not isinstance(dev, str) or not DEVICE_ID.match(dev):
        return f"device id {dev!r}: use {ID_RULE}"
    if dev.startswith(RESERVED_ID_PREFIXES):
        return f"device id {dev!r} is reserved for the edge's own accounts"
    return None


# -- the schema --------------------------------------------------------------------------
# Each TOML table is a dataclass below; each key is a field, with its type, its default
# (written here once) and, in `setting()`, its range or rule. One reader (_read) takes any
# table through its class: a key the class lacks is an error (with the nearest one
# suggested), a value of the wrong type or out of range is named in TOML's words. What
# involves several keys at once (TLS before listening beyond this machine, an uplink's
# URL for its kind) is a rule in _check_*, after the read.

Problem = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Setting:
    """How one key is checked beyond its type."""
    lo: float | None = None  # a number's range
    hi: float | None = None
    check: Problem | None = None  # why a value (each item of a list) is wrong, or None
    path: bool = False  # a file: relative to the configuration's folder
    beside_db: bool = False  # a file that, when not given, sits beside the database
    fallback: str = ""  # when not given: the value of this other key of the table
    toml: bool = True  # False: derived, never in the file


def rule(**how: Any) -> dict[str, Setting]:
    """A field's metadata: how its key is checked."""
    return {"setting": Setting(**how)}


def setting(default: Any = MISSING, **how: Any) -> Any:
    """A field with its default and its rule (a Path's is written field(..., metadata=rule())
    where ruff cannot see that this is dataclasses.field)."""
    return field(default=default, metadata=rule(**how))


def _device_id(v: Any) -> str | None:
    return device_id_problem(v)


def _site(v: Any) -> str | None:
    return None if DEVICE_ID.match(v) else f"use {ID_RULE}"


def _station_id(v: Any) -> str | None:
    return None if _ID.match(v) else "is not a printable GBFS id"


def _http_url(v: Any) -> str | None:
    u = urlparse(v)
    return None if u.scheme in ("http", "https") and u.hostname else "must be an http(s) URL"


@dataclass(frozen=True)
class StationConfig:  # [[stations]]
    id: str = setting(check=_station_id)
    name_zh: str = setting()
    name_en: str = setting(fallback="id")
    lat: float = setting(lo=-90, hi=90)
    lon: float = setting(lo=-180, hi=180)
    devices: tuple[str, ...] = setting((), check=_device_id)
    address: str = ""


@dataclass(frozen=True)
class SerialConfig:  # [[serial]]
    port: str = setting()
    baud: int = setting(115200, lo=1200, hi=3_000_000)
    # The devices wired to this port: the cable is their credential, and only
    # they may speak on it (docs/security.md).
    devices: tuple[str, ...] = setting((), check=_device_id)


@dataclass(frozen=True)
class MqttConfig:
    """The edge's broker, as the transport uses it (read from [mqtt]: MqttSettings)."""
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = "huimin-edge"
    keepalive: int = 30
    tls: bool = False  # mqtts://: verify the broker against `ca`
    ca: Path | None = None
    device_rate_per_s: float = 20.0  # each device's budget (edge/core/budget.py)
    device_burst: int = 1000
    worker_processes: int = 1  # 0: devices' messages checked and sealed in-process


@dataclass(frozen=True)
class MqttSettings:  # [mqtt]
    url: str = setting()
    username: str = ""
    password: str = ""
    ca: Path | None = field(default=None, metadata=rule(path=True))
    client_id: str = ""  # default huimin-edge-<site>
    keepalive: int = setting(30, lo=5, hi=3600)
    # Each device's message budget, before anything of it is decoded: a dock
    # sends a report every heartbeat and its events. The burst holds what the
    # broker kept for the edge through a long outage (eight hours of reports
    # every 30 s) and comes at once (edge/core/budget.py). Beyond: dropped, counted.
    device_rate_per_s: float = setting(20.0, lo=1, hi=10000)
    device_burst: int = setting(1000, lo=10, hi=1_000_000)
    # Devices' messages checked (decoded, MAC) and replies sealed in a worker
    # process beside the edge (1), or in the edge's own (0: a one-core board, where
    # a second process only costs). See docs/scaling.md (bench/ingest.py).
    worker_processes: int = setting(1, lo=0, hi=1)


@dataclass(frozen=True)
class UplinkConfig:  # [[uplinks]]
    """One way to the city's backend (cloud_bridge): a signed HTTPS webhook,
    an MQTT broker (a city cluster, or a local Mosquitto bridged there), or the
    city tier's NATS JetStream cluster (docs/scaling.md)."""
    name: str = setting(fallback="kind")
    kind: str = setting(check=lambda v: None if v in ("webhook", "mqtt", "nats")
                        else f"must be webhook, mqtt or nats, got {v!r}")
    url: str = setting()  # nats: the cluster's nodes, comma-separated
    secret: str = ""  # this site's HMAC key: webhooks are signed with it, MQTT rentals checked
    batch: int = setting(100, lo=1, hi=1000)
    timeout_s: float = setting(10.0, lo=0.5, hi=300)
    username: str | None = None
    password: str | None = None
    # nats: the city tier's CA (default: the system's)
    ca: Path | None = field(default=None, metadata=rule(path=True))

    @property
    def servers(self) -> list[str]:
        return [u.strip() for u in self.url.split(",") if u.strip()]


@dataclass(frozen=True)
class KioskConfig:  # [[kiosks]]
    id: str = setting(check=_device_id)
    # Where it stands, so its idle screen lists the nearest stations.
    lat: float | None = setting(None, lo=-90, hi=90)
    lon: float | None = setting(None, lo=-180, hi=180)
    # Where its screen can be seen as a picture (the simulator's display emulator
    # serves one), for the technician dashboard.
    screen_url: str = setting("", check=lambda v: _http_url(v) if v else None)


@dataclass(frozen=True)
class SystemConfig:  # [system]: the GBFS system_information
    id: str = "huimin-town"
    name_zh: str = "惠民公共自行车"
    name_en: str = "Huimin Public Bikes"
    operator_zh: str = "县公共自行车服务中心"
    operator_en: str = "County Public Bike Service Centre"
    timezone: str = "Asia/Shanghai"
    email: str = "bikes@example.org"
    phone: str = ""
    license_url: str = "https://creativecommons.org/licenses/by/4.0/"
    opening_hours: str = "24/7"
    url: str = ""


@dataclass(frozen=True)
class EdgeSettings:  # [edge]
    site: str = setting(check=_site)
    http_host: str = "127.0.0.1"
    http_port: int = setting(8080, lo=0, hi=65535)
    # HTTPS by the edge itself (a certificate from `huimin ca`), for when it
    # must be reached beyond the Pi without a reverse proxy (docs/deploy.md).
    tls_cert: Path | None = field(default=None, metadata=rule(path=True))
    tls_key: Path | None = field(default=None, metadata=rule(path=True))
    public_url: str = ""
    # Prometheus's /metrics on an address of its own as well, for scrapers on a
    # private network (None: only on http_host:http_port). Same token, same TLS.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = setting(None, lo=0, hi=65535)
    db: Path = field(default=Path("edge.db"), metadata=rule(path=True))
    heartbeat_timeout_s: float = setting(90.0, lo=1, hi=3600)
    status_ttl_s: int = setting(0, lo=0, hi=3600)
    static_ttl_s: int = setting(300, lo=0, hi=86400)
    rental_timeout_s: float = setting(60.0, lo=5, hi=3600)
    # The devices' command keys and broker password hashes (edge/adapters/device_keys.py)
    device_keys: Path = field(default=Path("device-keys.toml"),
                              metadata=rule(path=True, beside_db=True))
    # Technicians' API tokens, hashed (edge/adapters/api_tokens.py, huimin token)
    api_tokens: Path = field(default=Path("api-tokens.toml"),
                             metadata=rule(path=True, beside_db=True))
    # Fund answers cached for kiosks: forgotten this long after a villager's
    # last lookup, and all at once when the region key's id changes.
    funds_retention_days: float = setting(30.0, lo=1, hi=3650)
    region_key_id: str = ""
    # per kiosk, after a burst of 10 (edge/app/funds.py)
    kiosk_lookups_per_minute: float = setting(30.0, lo=1, hi=600)
    # What the edge keeps (edge/runtime.py retention): events the backend has,
    # finished rentals, and failed deliveries kept for a technician to read.
    events_retention_days: float = setting(90.0, lo=1, hi=3650)
    dead_letter_max: int = setting(10_000, lo=10, hi=10_000_000)
    # The database's size bound: past it, writes fail as on a full disk, and
    # the edge keeps working without losing anything (docs/deploy.md, "Full disk").
    db_max_mb: float = setting(2048.0, lo=1, hi=1_000_000)


@dataclass(frozen=True)
class EdgeConfig(EdgeSettings):
    """The whole file: [edge]'s settings and the other tables."""
    system: SystemConfig = field(default_factory=SystemConfig)
    stations: tuple[StationConfig, ...] = ()
    serial: tuple[SerialConfig, ...] = ()
    mqtt: MqttConfig | None = None
    uplinks: tuple[UplinkConfig, ...] = ()
    kiosk_table: tuple[KioskConfig, ...] = ()

    @property
    def kiosks(self) -> tuple[str, ...]:
        """The kiosks this edge answers lookups for, as listed."""
        return tuple(k.id for k in self.kiosk_table)

    @property
    def kiosk_screens(self) -> tuple[tuple[str, str], ...]:
        return tuple((k.id, k.screen_url) for k in self.kiosk_table if k.screen_url)

    @property
    def kiosk_places(self) -> tuple[tuple[str, float, float], ...]:
        return tuple((k.id, k.lat, k.lon) for k in self.kiosk_table
                     if k.lat is not None and k.lon is not None)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return self.public_url.rstrip("/") or f"{scheme}://{self.http_host}:{self.http_port}"

    def device_station(self) -> dict[str, str]:
        """Every registered device and its station ("" for kiosks)."""
        return {**{k: "" for k in self.kiosks},
                **{d: s.id for s in self.stations for d in s.devices}}


# The file's tables: name -> (its class, a list of them?)
TABLES: dict[str, tuple[type, bool]] = {
    "edge": (EdgeSettings, False), "system": (SystemConfig, False),
    "stations": (StationConfig, True), "serial": (SerialConfig, True),
    "mqtt": (MqttSettings, False), "uplinks": (UplinkConfig, True),
    "kiosks": (KioskConfig, True)}

# TOML's words for the types, as the operator wrote them
_KIND = {dict: "a table ([name] or {...})", list: "a list ([...] or [[name]] tables)",
         str: "text in quotes", int: "a whole number", float: "a number", bool: "true or false",
         Path: "a file's path in quotes", datetime.date: "a date",
         datetime.datetime: "a date and time", datetime.time: "a time"}


def _kind_of(v: Any) -> str:
    return _KIND.get(type(v), type(v).__name__)


def _suggest(key: str, known: list[str], where: str) -> str:
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if near:
        return f"{where}{key} is not a setting; did you mean {where}{near[0]}?"
    return f"{where}{key} is not a setting (known here: {', '.join(known)})"


def _convert(v: Any, typ: Any, how: Setting, name: str, base: Path | None) -> Any:
    """One value of the file as the field's type says, or a ConfigError in TOML's words."""
    args = get_args(typ)
    if get_origin(typ) in (Union, UnionType):  # X | None: given, so an X
        typ = next(a for a in args if a is not type(None))
        args = get_args(typ)
    if get_origin(typ) is tuple:  # tuple[str, ...]: a list of them
        if not isinstance(v, list):
            raise ConfigError(f"{name} must be {_KIND[list]}, not {_kind_of(v)}")
        return tuple(_convert(item, args[0], how, f"{name}[{i}]", base)
                     for i, item in enumerate(v))
    want = str if typ is Path else typ
    if typ is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, want) or (isinstance(v, bool) and want is not bool):
        raise ConfigError(f"{name} must be {_KIND[typ]}, not {_kind_of(v)}")
    if how.lo is not None and how.hi is not None and not how.lo <= cast(float, v) <= how.hi:
        raise ConfigError(f"{name} must be {how.lo:g}..{how.hi:g}, not {v}")
    if how.check is not None and (why := how.check(v)) is not None:
        raise ConfigError(f"{name} {v!r}: {why}" if not why.startswith("device id")
                          else f"{name}: {why}")
    if typ is Path:
        p = Path(v)
        return base / p if how.path and base is not None and not p.is_absolute() else p
    return v


def _read(cls: type[T], table: Any, where: str, base: Path | None) -> T:
    """A table through its class: every key known, typed, in range; defaults for the
    rest, and a ConfigError naming the key for anything else."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where.rstrip('.')} must be {_KIND[dict]}, not {_kind_of(table)}")
    hints = get_type_hints(cls)
    keys = [f for f in fields(cast(Any, cls)) if f.metadata.get("setting", _PLAIN).toml]
    known = [f.name for f in keys]
    # A misspelt key first: it explains a "required" below better than that does.
    for key in table:
        if key not in known:
            raise ConfigError(_suggest(key, known, where))
    values: dict[str, Any] = {}
    for f in keys:
        how: Setting = f.metadata.get("setting", _PLAIN)
        if f.name in table:
            values[f.name] = _convert(table[f.name], hints[f.name], how, where + f.name, base)
        elif how.fallback:
            continue
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{where}{f.name} is required")
        elif how.beside_db and "db" in values:
            values[f.name] = values["db"].with_name(f.default.name)
        elif how.path and base is not None and isinstance(f.default, Path):
            values[f.name] = base / f.default
    for f in keys:
        how = f.metadata.get("setting", _PLAIN)
        if how.fallback and f.name not in values:
            values[f.name] = values[how.fallback]
    return cls(**values)


_PLAIN = Setting()


def parse(raw: dict[str, Any], base: Path | None = None) -> EdgeConfig:
    """Check and read a configuration: every key known, no placeholder left, every
    value typed and in range, the rules between keys kept. `base`: the file's folder,
    for the paths in it."""
    if (found := _placeholder(raw)) is not None:
        raise ConfigError(found)
    for key in raw:
        if key not in TABLES:
            raise ConfigError(_suggest(key, list(TABLES), "").replace(" is not a setting",
                                                                        " is not a table"))
    read: dict[str, Any] = {}
    for name, (cls, many) in TABLES.items():
        if name not in raw:
            continue
        if many:
            items = raw[name]
            if not isinstance(items, list):
                raise ConfigError(f"{name} must be a list of tables ([[{name}]]), not "
                                  f"{_kind_of(items)}")
            read[name] = tuple(_read(cls, t, f"{name}[{i}].", base)
                               for i, t in enumerate(items))
        else:
            read[name] = _read(cls, raw[name], f"{name}.", base)
    if "edge" not in read:
        raise ConfigError("edge.site is required: the [edge] table names this site")
    edge: EdgeSettings = read["edge"]
    stations: tuple[StationConfig, ...] = read.get("stations", ())
    kiosks: tuple[KioskConfig, ...] = read.get("kiosks", ())
    uplinks: tuple[UplinkConfig, ...] = read.get("uplinks", ())
    serial: tuple[SerialConfig, ...] = read.get("serial", ())
    _check_edge(edge)
    _check_places(stations, kiosks)
    for i, p in enumerate(serial):
        if not p.devices:
            raise ConfigError(f"serial[{i}].devices: list the devices wired to this port "
                              "(only they may speak on it)")
    for i, u in enumerate(uplinks):
        _check_uplink(u, f"uplinks[{i}].")
    if len({u.name for u in uplinks}) != len(uplinks):
        raise ConfigError("uplink names must be unique")
    mqtt = _mqtt(read["mqtt"], edge.site) if "mqtt" in read else None
    return EdgeConfig(**{f.name: getattr(edge, f.name) for f in fields(EdgeSettings)},
                      system=read.get("system", SystemConfig()), stations=stations,
                      serial=serial, mqtt=mqtt, uplinks=uplinks, kiosk_table=kiosks)


def _check_edge(e: EdgeSettings) -> None:
    if bool(e.tls_cert) != bool(e.tls_key):
        raise ConfigError("edge.tls_cert and edge.tls_key go together")
    if e.http_host not in _LOOPBACK and e.tls_cert is None:
        raise ConfigError(f"edge.http_host {e.http_host}: beyond this machine only over HTTPS: "
                          "give edge.tls_cert and edge.tls_key (huimin ca), or keep 127.0.0.1 "
                          "behind a TLS reverse proxy (docs/deploy.md)")
    if e.metrics_port is not None and e.metrics_host not in _LOOPBACK and e.tls_cert is None:
        raise ConfigError(f"edge.metrics_host {e.metrics_host}: beyond this machine only over "
                          "HTTPS (the scraper's token would cross the network in clear): "
                          "give edge.tls_cert and edge.tls_key")


def _check_places(stations: tuple[StationConfig, ...], kiosks: tuple[KioskConfig, ...]) -> None:
    """Ids unique; a device at one station at most; a kiosk is not a dock."""
    ids = [s.id for s in stations]
    if len(set(ids)) != len(ids):
        raise ConfigError("station ids must be unique")
    seen: dict[str, str] = {}
    for s in stations:
        for d in s.devices:
            if d in seen:
                raise ConfigError(f"device {d} is in stations {seen[d]} and {s.id}")
            seen[d] = s.id
    listed: set[str] = set()
    for i, k in enumerate(kiosks):
        if k.id in seen or k.id in listed:
            raise ConfigError(f"kiosks[{i}].id {k.id!r} is not unique")
        listed.add(k.id)
        if (k.lat is None) != (k.lon is None):
            raise ConfigError(f"kiosks[{i}]: lat and lon go together")


def _check_uplink(u: UplinkConfig, w: str) -> None:
    url = urlparse(u.url)
    if u.kind == "nats":
        _check_nats_urls(u.url, w)
    elif (u.kind == "webhook") != (url.scheme in ("http", "https")) or not url.hostname:
        raise ConfigError(f"{w}url {u.url!r} does not suit a {u.kind} uplink")
    if len(u.secret) < 16:
        raise ConfigError(f"{w}secret must be at least 16 characters (this site's HMAC "
                          "key: webhooks are signed with it, MQTT rentals checked)")
    if u.kind == "webhook" and url.scheme != "https" and url.hostname not in _LOOPBACK:
        raise ConfigError(f"{w}url: https:// to the city backend (plain http only to this "
                          "machine)")
    if u.kind == "mqtt" and url.scheme != "mqtts" and url.hostname not in _LOOPBACK:
        raise ConfigError(f"{w}url: plain MQTT only to a broker on this machine; "
                          "mqtts:// to the city")
    if u.kind in ("mqtt", "nats") and (not u.username or not u.password):
        raise ConfigError(f"{w}username and password: the city broker's account "
                          "for this site's bridge")


def _mqtt(m: MqttSettings, site: str) -> MqttConfig:
    url = urlparse(m.url)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise ConfigError("mqtt.url must look like mqtt://127.0.0.1:1883 or "
                          "mqtts://broker:8883")
    if url.scheme == "mqtt" and url.hostname not in _LOOPBACK:
        raise ConfigError("mqtt.url: plain MQTT only to a broker on this machine "
                          "(127.0.0.1); use mqtts:// with mqtt.ca for another host")
    if url.scheme == "mqtts" and m.ca is None:
        raise ConfigError("mqtt.ca: the county CA certificate that signed the broker's")
    if not m.username or not m.password:
        raise ConfigError("mqtt.username and mqtt.password: the broker takes no "
                          "anonymous clients (huimin broker makes the edge's account)")
    try:
        port = url.port
    except ValueError:
        raise ConfigError(f"mqtt.url {m.url!r}: its port is not a port") from None
    return MqttConfig(host=url.hostname, port=port or (8883 if m.ca else 1883),
                      username=m.username, password=m.password, tls=url.scheme == "mqtts",
                      ca=m.ca, client_id=m.client_id or f"huimin-edge-{site}",
                      keepalive=m.keepalive, device_rate_per_s=m.device_rate_per_s,
                      device_burst=m.device_burst, worker_processes=m.worker_processes)


def _placeholder(node: Any, where: str = "") -> str | None:
    """A value still as deploy.md shows it ("<this site's key, from the city>")."""
    if isinstance(node, dict):
        items: list[tuple[str, Any]] = [(f"{where}{k}", v) for k, v in node.items()]
    elif isinstance(node, list):
        items = [(f"{where.rstrip('.')}[{i}]", v) for i, v in enumerate(node)]
    else:
        return None
    for name, v in items:
        if isinstance(v, str) and v.strip().startswith("<") and v.strip().endswith(">"):
            return f"{name} is still the placeholder {v!r}: put the real value there"
        found = _placeholder(v, f"{name}.")
        if found:
            return found
    return None


_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _check_nats_urls(url: str, where: str) -> None:
    """The city tier's nodes: tls:// to the city; plain nats:// only to this
    machine (a cluster member on the same Pi, in a test)."""
    servers = [u.strip() for u in url.split(",") if u.strip()]
    if not servers:
        raise ConfigError(f"{where}url: the city tier's nodes, e.g. tls://city-1:4222,...")
    for one in servers:
        p = urlparse(one)
        if p.scheme not in ("tls", "nats") or not p.hostname:
            raise ConfigError(f"{where}url {one!r}: each node as tls://host:port")
        if p.scheme != "tls" and p.hostname not in _LOOPBACK:
            raise ConfigError(f"{where}url {one!r}: tls:// to the city tier (plain nats:// "
                              "only to this machine)")


_WORDS = {str: "text", int: "whole number", float: "number", bool: "true/false",
          Path: "file path"}


def _type_words(typ: Any) -> str:
    if get_origin(typ) in (Union, UnionType):
        typ = next(a for a in get_args(typ) if a is not type(None))
    if get_origin(typ) is tuple:
        return f"list of {_type_words(get_args(typ)[0])}"
    return _WORDS.get(typ, str(typ))


def _num(v: Any) -> str:
    """A default or a bound as an operator writes it: 10000000, not 1e+07."""
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1000:
        return str(int(v))
    return str(v)


def reference() -> str:
    """Every key of every table, its type, default and range, as a Markdown table
    (docs/deploy.md holds a copy; `huimin edge --settings` prints it)."""
    rows = ["| key | type | default | range |", "| --- | --- | --- | --- |"]
    for name, (cls, many) in TABLES.items():
        hints = get_type_hints(cls)
        table = f"[[{name}]]" if many else f"[{name}]"
        for f in fields(cast(Any, cls)):
            how: Setting = f.metadata.get("setting", _PLAIN)
            if not how.toml:
                continue
            if how.fallback:
                default = f"its {how.fallback}"
            elif f.default is not MISSING:
                shown = ("none" if f.default in (None, ()) else '""' if f.default == ""
                         else f"`{_num(f.default)}`")
                default = ("beside db: " if how.beside_db else "") + shown
            elif f.default_factory is not MISSING:
                default = "none"
            else:
                default = "required"
            rng = (f"{_num(how.lo)} to {_num(how.hi)}"
                   if how.lo is not None and how.hi is not None else "")
            rows.append(f"| {table} `{f.name}` | {_type_words(hints[f.name])} | {default} "
                        f"| {rng} |")
    return "\n".join(rows) + "\n"


def load(path: Path) -> EdgeConfig:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (docs/deploy.md shows one to start "
                          "from)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        # utf-8-sig: a byte-order mark (Windows Notepad adds one) is read past.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not saved as UTF-8 (a Chinese Windows editor saves "
                          "GBK): save it again with the encoding UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(raw, path.parent)
