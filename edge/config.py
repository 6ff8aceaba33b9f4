"""Edge configuration: a TOML file, declared here with defaults and checked at
load. `huimin sim` writes one for its simulated town; a deployment keeps one in
/etc/huimin/edge.toml (see docs/deploy.md)."""

from __future__ import annotations

import difflib
import re
import tomllib
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


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


@dataclass(frozen=True)
class StationConfig:
    id: str
    name_zh: str
    name_en: str
    lat: float
    lon: float
    devices: tuple[str, ...]
    address: str = ""


@dataclass(frozen=True)
class SerialConfig:
    port: str
    baud: int = 115200
    # The devices wired to this port: the cable is their credential, and only
    # they may speak on it (docs/security.md).
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class MqttConfig:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = "huimin-edge"
    keepalive: int = 30
    tls: bool = False  # mqtts://: verify the broker against `ca`
    ca: Path | None = None


@dataclass(frozen=True)
class UplinkConfig:
    """One way to the city's backend (cloud_bridge): a signed HTTPS webhook,
    an MQTT broker (a city cluster, or a local Mosquitto bridged there), or the
    city tier's NATS JetStream cluster (docs/scaling.md)."""
    name: str
    kind: str  # "webhook", "mqtt" or "nats"
    url: str  # nats: the cluster's nodes, comma-separated
    secret: str = ""  # webhook: HMAC-SHA256 key
    batch: int = 100
    timeout_s: float = 10.0
    username: str | None = None
    password: str | None = None
    ca: Path | None = None  # nats: the city tier's CA (default: the system's)

    @property
    def servers(self) -> list[str]:
        return [u.strip() for u in self.url.split(",") if u.strip()]


@dataclass(frozen=True)
class SystemConfig:
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
class EdgeConfig:
    site: str
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # HTTPS by the edge itself (a certificate from `huimin ca`), for when it
    # must be reached beyond the Pi without a reverse proxy (docs/deploy.md).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    public_url: str = ""
    # Prometheus's /metrics on an address of its own as well, for scrapers on a
    # private network (None: only on http_host:http_port). Same token, same TLS.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    db: Path = Path("edge.db")
    heartbeat_timeout_s: float = 90.0
    status_ttl_s: int = 0
    static_ttl_s: int = 300
    system: SystemConfig = field(default_factory=SystemConfig)
    stations: tuple[StationConfig, ...] = ()
    serial: tuple[SerialConfig, ...] = ()
    mqtt: MqttConfig | None = None
    uplinks: tuple[UplinkConfig, ...] = ()
    rental_timeout_s: float = 60.0
    kiosks: tuple[str, ...] = ()  # kiosk device ids this edge answers lookups for
    # Where a kiosk's screen can be seen as a picture (the simulator's display
    # emulator serves one), for the technician dashboard; kiosk id -> URL.
    kiosk_screens: tuple[tuple[str, str], ...] = ()
    # Where a kiosk stands (lat, lon), so its idle screen lists the nearest stations.
    kiosk_places: tuple[tuple[str, float, float], ...] = ()
    # The devices' command keys and broker password hashes (edge/adapters/device_keys.py)
    device_keys: Path = Path("device-keys.toml")
    # Fund answers cached for kiosks: forgotten this long after a villager's
    # last lookup, and all at once when the region key's id changes.
    funds_retention_days: float = 30.0
    region_key_id: str = ""
    kiosk_lookups_per_minute: float = 30.0  # per kiosk, after a burst of 10 (edge/app/funds.py)
    # What the edge keeps (edge/runtime.py retention): events the backend has,
    # finished rentals, and failed deliveries kept for a technician to read.
    events_retention_days: float = 90.0
    dead_letter_max: int = 10_000
    # The database's size bound: past it, writes fail as on a full disk, and
    # the edge keeps working without losing anything (docs/deploy.md, "Full disk").
    db_max_mb: float = 2048.0
    # Technicians' API tokens, hashed (edge/adapters/api_tokens.py, huimin token)
    api_tokens: Path = Path("api-tokens.toml")

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return self.public_url.rstrip("/") or f"{scheme}://{self.http_host}:{self.http_port}"

    def device_station(self) -> dict[str, str]:
        """Every registered device and its station ("" for kiosks)."""
        return {**{k: "" for k in self.kiosks},
                **{d: s.id for s in self.stations for d in s.devices}}


# What parse() asked of each table (by its id): the keys a table may hold. A key
# nobody asked for is a typing mistake (heartbeat_timeout for heartbeat_timeout_s),
# not something to ignore.
_asked: ContextVar[dict[int, set[str]] | None] = ContextVar("_asked", default=None)

# TOML's words for the types, as the operator wrote them
_KIND = {dict: "a table ([name] or {...})", list: "a list ([...] or [[name]] tables)",
         str: "text in quotes", int: "a whole number", float: "a number", bool: "true or false"}


def _kind_of(typ: type | tuple[type, ...]) -> str:
    if isinstance(typ, tuple):
        return "a number" if set(typ) == {int, float} else " or ".join(map(_kind_of, typ))
    return _KIND.get(typ, typ.__name__)


def _get(d: dict[str, Any], key: str, typ: type | tuple[type, ...], default: Any = ...,
         where: str = "") -> Any:
    asked = _asked.get()
    if asked is not None:
        asked.setdefault(id(d), set()).add(key)
    if key not in d:
        if default is ...:
            raise ConfigError(f"{where}{key} is required")
        return default
    v = d[key]
    if not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool):
        raise ConfigError(f"{where}{key} must be {_kind_of(typ)}, not "
                          f"{_kind_of(type(v))}")
    return v


def _unknown_keys(node: Any, asked: dict[int, set[str]], where: str = "",
                  misspelt_only: bool = False) -> str | None:
    """The first key of a table parse() read that it never asked for, as an error.
    misspelt_only: only a key that looks like one asked for and missing (the parse
    stopped early, so a key not asked for yet may still be a setting)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            found = _unknown_keys(item, asked, f"{where.rstrip('.')}[{i}].", misspelt_only)
            if found:
                return found
        return None
    if not isinstance(node, dict) or id(node) not in asked:
        return None
    known = asked[id(node)]
    missing = sorted(known - node.keys())
    for key, value in node.items():
        if key not in known:
            near = difflib.get_close_matches(key, missing if misspelt_only else sorted(known),
                                             n=1, cutoff=0.6)
            if near:
                return f"{where}{key} is not a setting; did you mean {where}{near[0]}?"
            if not misspelt_only:
                return f"{where}{key} is not a setting (known here: {', '.join(sorted(known))})"
            continue
        found = _unknown_keys(value, asked, f"{where}{key}.", misspelt_only)
        if found:
            return found
    return None


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


def parse(raw: dict[str, Any], base: Path | None = None) -> EdgeConfig:
    """Check and read a configuration: every key known, no placeholder left, every
    value in range."""
    if (found := _placeholder(raw)) is not None:
        raise ConfigError(found)
    asked: dict[int, set[str]] = {}
    token = _asked.set(asked)
    try:
        cfg = _parse(raw, base)
    except ConfigError:
        # A misspelt key explains a "required" better than the error does; a key only
        # not asked for yet (the parse stopped early) is no such explanation.
        if (found := _unknown_keys(raw, asked, misspelt_only=True)) is not None:
            raise ConfigError(found) from None
        raise
    finally:
        _asked.reset(token)
    if (found := _unknown_keys(raw, asked)) is not None:
        raise ConfigError(found)
    return cfg


def _parse(raw: dict[str, Any], base: Path | None = None) -> EdgeConfig:
    edge = _get(raw, "edge", dict, {})
    site = _get(edge, "site", str, where="edge.")
    if not DEVICE_ID.match(site):
        raise ConfigError(f"edge.site {site!r}: use {ID_RULE}")
    port = _get(edge, "http_port", int, 8080, "edge.")
    if not 0 <= port <= 65535:
        raise ConfigError(f"edge.http_port {port} out of range")
    hb = float(_get(edge, "heartbeat_timeout_s", (int, float), 90.0, "edge."))
    if not 1 <= hb <= 3600:
        raise ConfigError("edge.heartbeat_timeout_s must be 1..3600")
    db = Path(_get(edge, "db", str, "edge.db", "edge."))
    if base is not None and not db.is_absolute():
        db = base / db
    sysraw = _get(raw, "system", dict, {})
    system = SystemConfig(**{k: _get(sysraw, k, str, getattr(SystemConfig, k), "system.")
                             for k in SystemConfig.__dataclass_fields__})
    stations = []
    seen_dev: dict[str, str] = {}
    for i, s in enumerate(_get(raw, "stations", list, [])):
        w = f"stations[{i}]."
        sid = _get(s, "id", str, where=w)
        if not _ID.match(sid):
            raise ConfigError(f"{w}id {sid!r} is not a printable GBFS id")
        lat = float(_get(s, "lat", (int, float), where=w))
        lon = float(_get(s, "lon", (int, float), where=w))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ConfigError(f"{w}lat/lon out of range")
        devs = tuple(_get(s, "devices", list, [], w))
        for d in devs:
            if (why := device_id_problem(d)) is not None:
                raise ConfigError(f"{w}devices: {why}")
            if d in seen_dev:
                raise ConfigError(f"device {d} is in stations {seen_dev[d]} and {sid}")
            seen_dev[d] = sid
        stations.append(StationConfig(
            id=sid, name_zh=_get(s, "name_zh", str, where=w),
            name_en=_get(s, "name_en", str, sid, w), lat=lat, lon=lon, devices=devs,
            address=_get(s, "address", str, "", w)))
    ids = [s.id for s in stations]
    if len(set(ids)) != len(ids):
        raise ConfigError("station ids must be unique")
    serial = []
    for i, p in enumerate(_get(raw, "serial", list, [])):
        w = f"serial[{i}]."
        devices = tuple(_get(p, "devices", list, [], w))
        for d in devices:
            if (why := device_id_problem(d)) is not None:
                raise ConfigError(f"{w}devices: {why}")
        if not devices:
            raise ConfigError(f"{w}devices: list the devices wired to this port "
                              "(only they may speak on it)")
        serial.append(SerialConfig(port=_get(p, "port", str, where=w),
                                   baud=_get(p, "baud", int, 115200, w), devices=devices))
    mqtt = None
    if "mqtt" in raw:
        m = _get(raw, "mqtt", dict)
        url = urlparse(_get(m, "url", str, where="mqtt."))
        if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
            raise ConfigError("mqtt.url must look like mqtt://127.0.0.1:1883 or "
                              "mqtts://broker:8883")
        if url.scheme == "mqtt" and url.hostname not in _LOOPBACK:
            raise ConfigError("mqtt.url: plain MQTT only to a broker on this machine "
                              "(127.0.0.1); use mqtts:// with mqtt.ca for another host")
        ca = _get(m, "ca", str, "", "mqtt.")
        if url.scheme == "mqtts" and not ca:
            raise ConfigError("mqtt.ca: the county CA certificate that signed the broker's")
        username = _get(m, "username", str, None, "mqtt.")
        password = _get(m, "password", str, None, "mqtt.")
        if not username or not password:
            raise ConfigError("mqtt.username and mqtt.password: the broker takes no "
                              "anonymous clients (huimin broker makes the edge's account)")
        mqtt = MqttConfig(host=url.hostname, port=url.port or (8883 if ca else 1883),
                          username=username, password=password,
                          tls=url.scheme == "mqtts",
                          ca=(base / ca if base is not None else Path(ca)) if ca else None,
                          client_id=_get(m, "client_id", str, f"huimin-edge-{site}", "mqtt."),
                          keepalive=_get(m, "keepalive", int, 30, "mqtt."))
    uplinks = []
    for i, u in enumerate(_get(raw, "uplinks", list, [])):
        w = f"uplinks[{i}]."
        kind = _get(u, "kind", str, where=w)
        if kind not in ("webhook", "mqtt", "nats"):
            raise ConfigError(f"{w}kind must be webhook, mqtt or nats, got {kind!r}")
        url = _get(u, "url", str, where=w)
        scheme = urlparse(url).scheme
        if kind == "nats":
            _check_nats_urls(url, w)
        elif (kind == "webhook") != (scheme in ("http", "https")) or not urlparse(url).hostname:
            raise ConfigError(f"{w}url {url!r} does not suit a {kind} uplink")
        secret = _get(u, "secret", str, "", w)
        if len(secret) < 16:
            raise ConfigError(f"{w}secret must be at least 16 characters (this site's HMAC "
                              "key: webhooks are signed with it, MQTT rentals checked)")
        if kind == "webhook" and scheme != "https" and urlparse(url).hostname not in _LOOPBACK:
            raise ConfigError(f"{w}url: https:// to the city backend (plain http only to this "
                              "machine)")
        if kind in ("mqtt", "nats"):
            host = urlparse(url).hostname
            if kind == "mqtt" and urlparse(url).scheme != "mqtts" and host not in _LOOPBACK:
                raise ConfigError(f"{w}url: plain MQTT only to a broker on this machine; "
                                  "mqtts:// to the city")
            if not _get(u, "username", str, "", w) or not _get(u, "password", str, "", w):
                raise ConfigError(f"{w}username and password: the city broker's account "
                                  "for this site's bridge")
        batch = _get(u, "batch", int, 100, w)
        if not 1 <= batch <= 1000:
            raise ConfigError(f"{w}batch must be 1..1000")
        uplinks.append(UplinkConfig(
            name=_get(u, "name", str, kind, w), kind=kind, url=url, secret=secret, batch=batch,
            timeout_s=float(_get(u, "timeout_s", (int, float), 10.0, w)),
            username=_get(u, "username", str, None, w),
            password=_get(u, "password", str, None, w),
            ca=_file(base, _get(u, "ca", str, "", w))))
    kiosks, screens, places = [], [], []
    for i, k in enumerate(_get(raw, "kiosks", list, [])):
        kid = _get(k, "id", str, where=f"kiosks[{i}].")
        if (why := device_id_problem(kid)) is not None:
            raise ConfigError(f"kiosks[{i}].id: {why}")
        if kid in seen_dev or kid in kiosks:
            raise ConfigError(f"kiosks[{i}].id {kid!r} is not unique")
        kiosks.append(kid)
        screen = _get(k, "screen_url", str, "", f"kiosks[{i}].")
        if screen:
            if urlparse(screen).scheme not in ("http", "https") or not urlparse(screen).hostname:
                raise ConfigError(f"kiosks[{i}].screen_url must be an http(s) URL")
            screens.append((kid, screen))
        klat = _get(k, "lat", (int, float), None, f"kiosks[{i}].")
        klon = _get(k, "lon", (int, float), None, f"kiosks[{i}].")
        if (klat is None) != (klon is None):
            raise ConfigError(f"kiosks[{i}]: lat and lon go together")
        if klat is not None:
            if not (-90 <= klat <= 90 and -180 <= klon <= 180):
                raise ConfigError(f"kiosks[{i}]: lat/lon out of range")
            places.append((kid, float(klat), float(klon)))
    http_host = _get(edge, "http_host", str, "127.0.0.1", "edge.")
    cert, key = _get(edge, "tls_cert", str, "", "edge."), _get(edge, "tls_key", str, "", "edge.")
    if bool(cert) != bool(key):
        raise ConfigError("edge.tls_cert and edge.tls_key go together")
    tls_cert = (base / cert if base is not None else Path(cert)) if cert else None
    tls_key = (base / key if base is not None else Path(key)) if key else None
    if http_host not in _LOOPBACK and tls_cert is None:
        raise ConfigError(f"edge.http_host {http_host}: beyond this machine only over HTTPS: "
                          "give edge.tls_cert and edge.tls_key (huimin ca), or keep 127.0.0.1 "
                          "behind a TLS reverse proxy (docs/deploy.md)")
    metrics_host = _get(edge, "metrics_host", str, "127.0.0.1", "edge.")
    metrics_port = _get(edge, "metrics_port", int, None, "edge.")
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        raise ConfigError(f"edge.metrics_port {metrics_port} out of range")
    if metrics_port is not None and metrics_host not in _LOOPBACK and tls_cert is None:
        raise ConfigError(f"edge.metrics_host {metrics_host}: beyond this machine only over "
                          "HTTPS (the scraper's token would cross the network in clear): "
                          "give edge.tls_cert and edge.tls_key")
    retention = _get(edge, "funds_retention_days", (int, float), 30.0, "edge.")
    if not 1 <= retention <= 3650:
        raise ConfigError("edge.funds_retention_days must be 1..3650")
    keep_days = _get(edge, "events_retention_days", (int, float), 90.0, "edge.")
    dead_max = _get(edge, "dead_letter_max", int, 10_000, "edge.")
    db_max_mb = float(_get(edge, "db_max_mb", (int, float), 2048.0, "edge."))
    if not 1 <= db_max_mb <= 1_000_000:
        raise ConfigError("edge.db_max_mb must be 1..1000000")
    if not 1 <= keep_days <= 3650 or not 10 <= dead_max <= 10_000_000:
        raise ConfigError("edge.events_retention_days must be 1..3650, edge.dead_letter_max "
                          "10..10000000")
    rate = _get(edge, "kiosk_lookups_per_minute", (int, float), 30.0, "edge.")
    if not 1 <= rate <= 600:
        raise ConfigError("edge.kiosk_lookups_per_minute must be 1..600")
    if len({u.name for u in uplinks}) != len(uplinks):
        raise ConfigError("uplink names must be unique")
    return EdgeConfig(
        site=site, http_host=http_host, http_port=port, tls_cert=tls_cert, tls_key=tls_key,
        metrics_host=metrics_host, metrics_port=metrics_port,
        public_url=_get(edge, "public_url", str, "", "edge."), db=db, heartbeat_timeout_s=hb,
        status_ttl_s=_get(edge, "status_ttl_s", int, 0, "edge."),
        static_ttl_s=_get(edge, "static_ttl_s", int, 300, "edge."),
        system=system, stations=tuple(stations), mqtt=mqtt,
        uplinks=tuple(uplinks), kiosks=tuple(kiosks), kiosk_screens=tuple(screens),
        kiosk_places=tuple(places),
        serial=tuple(serial),
        device_keys=_path(_get(edge, "device_keys", str, "", "edge."), db, base,
                          "device-keys.toml"),
        api_tokens=_path(_get(edge, "api_tokens", str, "", "edge."), db, base,
                         "api-tokens.toml"),
        funds_retention_days=float(retention),
        kiosk_lookups_per_minute=float(rate),
        events_retention_days=float(keep_days), dead_letter_max=dead_max, db_max_mb=db_max_mb,
        region_key_id=_get(edge, "region_key_id", str, "", "edge."),
        rental_timeout_s=float(_get(edge, "rental_timeout_s", (int, float), 60.0, "edge.")))


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


def _file(base: Path | None, value: str) -> Path | None:
    if not value:
        return None
    return base / value if base is not None else Path(value)


def _path(value: str, db: Path, base: Path | None, default: str) -> Path:
    """A path from the config, relative to its folder; by default beside the db."""
    if not value:
        return db.with_name(default)
    p = Path(value)
    return p if p.is_absolute() or base is None else base / p


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
