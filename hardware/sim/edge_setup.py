"""The simulated town's edge as a county sets one up: each device provisioned
(its command key; on MQTT, its broker account) and the edge's TOML
configuration written, with the same keys a Pi's has (docs/deploy.md)."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from hardware.sim.backend import DevBackend
from hardware.sim.bench import BenchBoard
from hardware.sim.devices import SimDock, SimKiosk
from hardware.sim.spec import CENTRE, PLACES, SITE, TownSpec
from tools.broker import Broker, password_hash


@dataclass
class CityAccess:
    """A town inside a city (huimin city): the city's backend, shared by
    every site, and this site's way into the city tier."""
    backend: DevBackend
    backend_url: str
    urls: list[str]
    ca: Path
    password: str  # this site's account at the city tier
    secret: str  # this site's key at the backend


@dataclass
class Uplinks:
    """The town's ways to the city: a webhook to its backend, an MQTT broker."""
    secret: str
    backend_url: str = ""
    city_broker_url: str = ""
    bridge_password: str = ""
    city_tier_urls: str = ""  # the city tier's NATS nodes (huimin city), comma-separated
    city_tier_ca: str = ""
    city_tier_password: str = ""


@dataclass
class Provisioning:
    """What `huimin provision` makes for each device: its command key and, on
    MQTT, its broker account (the edge keeps the key, the broker the hash)."""
    broker: Broker | None
    entries: dict[str, dict[str, str]] = field(default_factory=dict)

    def provision(self, d: SimDock | SimKiosk) -> None:
        d.secrets["command_key"] = secrets.token_hex(32)
        entry = {"command_key": d.secrets["command_key"]}
        if d.link == "mqtt" and self.broker is not None:
            d.secrets["mqtt_password"] = pw = secrets.token_urlsafe(18)
            entry["mqtt_password"] = password_hash(pw)
            self.broker.add_hashed(d.dev, entry["mqtt_password"])
        self.entries[d.dev] = entry


def station_name(i: int) -> tuple[str, str]:
    zh, en = PLACES[i % len(PLACES)]
    if i >= len(PLACES):
        zh, en = f"{zh}{i // len(PLACES) + 1}号", f"{en} {i // len(PLACES) + 1}"
    return zh, en


def edge_toml(spec: TownSpec, workdir: Path, rng: random.Random, http_port: int,
              broker: Broker | None, edge_password: str, uplinks: Uplinks,
              docks: list[SimDock], kiosks: list[SimKiosk],
              screens: dict[str, str] | None = None, bench: BenchBoard | None = None) -> str:
    site = spec.site
    system_id, name_zh, name_en = "anji-public-bikes", "安吉公共自行车", "Anji Public Bikes"
    if site != SITE:  # one system per site in a city (its manifest.json lists them)
        system_id, name_zh, name_en = f"{site}-public-bikes", f"{name_zh}（{site}）", \
            f"{name_en} ({site})"
    lines = ["[edge]", f'site = "{site}"', f"http_port = {http_port}",
             f'db = "{workdir / "edge.db"}"',
             f"heartbeat_timeout_s = {spec.heartbeat_s * 3}",
             f'device_keys = "{workdir / "device-keys.toml"}"',
             f'api_tokens = "{workdir / "api-tokens.toml"}"',
             *([f"kiosk_lookups_per_minute = {spec.kiosk_lookups_per_minute}"]
               if spec.kiosk_lookups_per_minute else []),
             *([f"metrics_port = {spec.metrics_port}"] if spec.metrics_port else []), "",
             "[system]", f'id = "{system_id}"', f'name_zh = "{name_zh}"',
             f'name_en = "{name_en}"', ""]
    if broker is not None:
        lines += ["[mqtt]", f'url = "{broker.url}"', 'username = "huimin-edge"',
                  f'password = "{edge_password}"', ""]
    if uplinks.city_broker_url:
        lines += ["[[uplinks]]", 'name = "city-mqtt"', 'kind = "mqtt"',
                  f'url = "{uplinks.city_broker_url}"', "timeout_s = 5",
                  f'username = "bridge-{site}"', f'password = "{uplinks.bridge_password}"',
                  f'secret = "{uplinks.secret}"', ""]
    if uplinks.city_tier_urls:
        lines += ["[[uplinks]]", 'name = "city-tier"', 'kind = "nats"',
                  f'url = "{uplinks.city_tier_urls}"', f'ca = "{uplinks.city_tier_ca}"',
                  f'username = "site-{site}"', f'password = "{uplinks.city_tier_password}"',
                  f'secret = "{uplinks.secret}"', "timeout_s = 5", "batch = 500", ""]
    if uplinks.backend_url:
        lines += ["[[uplinks]]", 'name = "city"', 'kind = "webhook"',
                  f'url = "{uplinks.backend_url}/webhook"', f'secret = "{uplinks.secret}"',
                  "timeout_s = 5", ""]
    for d in docks:
        if d.line is not None:
            port = d.line.link or d.line.paths[1]
            lines += ["[[serial]]", f'port = "{port}"', f'devices = ["{d.dev}"]', ""]
    if bench is not None:
        lines += ["[[serial]]", f'port = "{bench.line.paths[1]}"', f'devices = ["{bench.dev}"]',
                  ""]
    for k in kiosks:
        if "edge" in k.lines:
            lines += ["[[serial]]", f'port = "{k.lines["edge"].paths[1]}"',
                      f'devices = ["{k.dev}"]', ""]
        # The village service centre by the town centre: its idle page lists the
        # stations nearest it.
        lines += ["[[kiosks]]", f'id = "{k.dev}"', f"lat = {CENTRE[0]}", f"lon = {CENTRE[1]}",
                  *([f'screen_url = "{screens[k.dev]}"'] if screens and k.dev in screens
                    else []), ""]
    for i, d in enumerate(docks):
        zh, en = station_name(i)
        lat = CENTRE[0] + rng.uniform(-0.02, 0.02)
        lon = CENTRE[1] + rng.uniform(-0.02, 0.02)
        lines += ["[[stations]]", f'id = "{d.station}"', f'name_zh = "{zh}"',
                  f'name_en = "{en}"', f"lat = {lat:.6f}", f"lon = {lon:.6f}",
                  f'devices = ["{d.dev}"]', ""]
    return "\n".join(lines)
