"""The edge's HTTP server: GBFS v2.3 and v3.0 feeds (ETag/If-None-Match -> 304,
Last-Modified, gzip), a JSON API of devices, stations, events and metrics, and
the public availability page. Who may use what: edge/adapters/http/auth.py."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import ssl
import time
from dataclasses import asdict
from email.utils import formatdate
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge.adapters.api_tokens import ApiTokens
from edge.adapters.http.auth import (
    TECHNICIAN,
    UPLOAD_MAX,
    Sessions,
    login_form,
    login_handler,
    logout_handler,
    middleware,
)
from edge.adapters.http.prometheus import EdgeNumbers, registry_for
from edge.adapters.http.webserver import serve
from edge.adapters.store import SqliteStore
from edge.app.ota import Ota
from edge.app.provisioning import Provisioning
from edge.config import EdgeConfig, device_id_problem
from edge.core import gbfs
from edge.core.errors import Rejected
from edge.core.rollout import Image

log = logging.getLogger("edge.http")
MAX_PAGE = 1000  # the most rows any list returns at once
STATIC = Path(__file__).parent / "static"


class _Cached:
    __slots__ = ("body", "etag", "gz", "key", "modified")

    def __init__(self, key: tuple[int, int], body: bytes, modified: float) -> None:
        self.key = key
        self.body = body
        self.gz = gzip.compress(body, 5)
        self.etag = '"' + hashlib.sha1(body).hexdigest()[:20] + '"'
        self.modified = formatdate(modified, usegmt=True)


class EdgeView(EdgeNumbers, Protocol):
    """What the HTTP API reads and asks of the edge (edge/runtime.py's Edge):
    the numbers /metrics serves, and more."""
    cfg: EdgeConfig
    started: float
    tokens: ApiTokens
    store: SqliteStore
    ota: Ota
    devices: Provisioning


# What registration takes: a command key of 16-64 bytes in hex, and the broker password
# only as Mosquitto's PBKDF2 hash (tools/broker.py password_hash): one line, no spaces.
_COMMAND_KEY = re.compile(r"^(?:[0-9a-fA-F]{2}){16,64}$")
_BROKER_HASH = re.compile(r"^\$7\$[0-9]{1,7}"
                          r"\$[A-Za-z0-9+/]{4,88}={0,2}\$[A-Za-z0-9+/]{4,172}={0,2}$")


class HttpServer:
    def __init__(self, svc: EdgeView) -> None:
        self.svc = svc
        self._prometheus = registry_for(svc)
        self.port = 0
        self.metrics_port: int | None = None
        self._cache: dict[tuple[str, str, str], _Cached] = {}
        # version -> each station's station_status entry, encoded (gbfs.py); bounded
        # by the town's stations.
        self._entries: dict[str, gbfs.EntryCache] = {}
        self._runner: web.AppRunner | None = None
        self._metrics_runner: web.AppRunner | None = None
        self.sessions = Sessions()
        # The auth middleware reads each body within its bound (64K; an authenticated OTA
        # upload 16M), so the application's own cap is the larger one.
        app = web.Application(client_max_size=UPLOAD_MAX,
                              middlewares=[middleware(svc.tokens, self.sessions, svc.metrics)])
        app.add_routes([
            web.get("/", self.page),
            web.get("/login", login_form),
            web.post("/login", login_handler(svc.tokens, self.sessions, svc.metrics)),
            web.post("/logout", logout_handler(self.sessions)),
            web.get("/fleet", self.fleet_page),
            web.get("/gbfs/{version}/{feed}.json", self.feed),
            web.get("/gbfs/{version}/{lang}/{feed}.json", self.feed),
            web.get("/api/stations", self.api_stations),
            web.get("/api/stations/history", self.api_station_history),
            web.get("/api/devices", self.api_devices),
            web.post("/api/devices", self.api_device_register),
            web.get("/api/events", self.api_events),
            web.get("/api/kiosks/{id}/screen.svg", self.kiosk_screen),
            web.get("/api/metrics", self.api_metrics),
            web.get("/metrics", self.prometheus),
            web.get("/api/ota", self.api_ota_list),
            web.post("/api/ota", self.api_ota_start),
            web.get("/api/ota/{id}", self.api_ota_get),
            web.get("/healthz", self.healthz),
        ])
        self.app = app

    async def start(self) -> None:
        cfg = self.svc.cfg
        tls = None
        if cfg.tls_cert is not None and cfg.tls_key is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        self._runner, self.port = await serve(self.app, cfg.http_host, cfg.http_port, tls=tls)
        log.info("%s on %s:%d", "https" if tls else "http", cfg.http_host, self.port)
        if cfg.metrics_port is not None:
            # Only /metrics here, behind the same token check as everywhere.
            scrape = web.Application(middlewares=[middleware(self.svc.tokens, self.sessions,
                                                             self.svc.metrics)])
            scrape.add_routes([web.get("/metrics", self.prometheus)])
            self._metrics_runner, self.metrics_port = await serve(
                scrape, cfg.metrics_host, cfg.metrics_port, tls=tls)
            log.info("Prometheus /metrics also on %s:%d", cfg.metrics_host, self.metrics_port)

    async def stop(self) -> None:
        for runner in (self._metrics_runner, self._runner):
            if runner is not None:
                await runner.cleanup()

    # -- GBFS ------------------------------------------------------------------
    def _document(self, version: str, feed: str, lang: str) -> _Cached:
        st = self.svc.stations
        dynamic = feed in ("station_status", "station_information")
        key = (st.version if dynamic else 0, 0)
        c = self._cache.get((version, feed, lang))
        if c is not None and c.key == key:
            return c
        when = st.changed_at if dynamic else self.svc.started
        if feed == "station_status":
            body = gbfs.station_status_json(self.svc.cfg, version, st.statuses(), when,
                                            self._entries.setdefault(version, {}))
        else:
            doc = gbfs.build_lang(self.svc.cfg, version, feed, st.statuses(), when, lang)
            body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        c = _Cached(key, body, when)
        self._cache[(version, feed, lang)] = c
        return c

    async def feed(self, request: web.Request) -> web.StreamResponse:
        version = request.match_info["version"]
        feed = request.match_info["feed"]
        lang = request.match_info.get("lang", "zh-CN")
        if version not in gbfs.VERSIONS or feed not in gbfs.FEEDS or lang not in ("zh-CN", "en") \
                or (version == "3.0" and lang != "zh-CN"):
            raise web.HTTPNotFound(text=f"no such feed: {request.path}\n")
        c = self._document(version, feed, lang)
        headers = {"ETag": c.etag, "Last-Modified": c.modified, "Cache-Control": "no-cache",
                   "Access-Control-Allow-Origin": "*"}
        if c.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
            return web.Response(body=c.gz, headers=headers, content_type="application/json",
                                charset="utf-8")
        return web.Response(body=c.body, headers=headers, content_type="application/json",
                            charset="utf-8")

    # -- API ---------------------------------------------------------------------
    async def api_stations(self, request: web.Request) -> web.Response:
        names = {s.id: s for s in self.svc.cfg.stations}
        out = []
        for s in self.svc.stations.statuses():
            d: dict[str, Any] = asdict(s)
            cfg = names[s.station_id]
            d.update(name_zh=cfg.name_zh, name_en=cfg.name_en, lat=cfg.lat, lon=cfg.lon)
            out.append(d)
        return _json({"stations": out, "version": self.svc.stations.version})

    async def api_station_history(self, request: web.Request) -> web.Response:
        """Each station's bikes over the last hours (edge/core/history.py), for
        the dashboard's charts: {"stations": {id: [[time, bikes], ...]}}."""
        h, now = self.svc.stations.history, time.time()
        return _json({"now": now, "window_s": h.window_s, "step_s": h.step_s,
                      "stations": {s: h.series(s, now) for s in self.svc.stations.by_id}})

    async def api_devices(self, request: web.Request) -> web.Response:
        """?offset=N&limit=1..1000 (all, up to 1000)."""
        try:
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query.get("limit", str(MAX_PAGE)))
            if offset < 0 or not 1 <= limit <= MAX_PAGE:
                raise ValueError(f"offset >= 0, limit 1..{MAX_PAGE}")
        except ValueError as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        devs = sorted(self.svc.registry.devices.values(), key=lambda d: d.id)
        page = devs[offset:offset + limit]
        screens = dict(self.svc.cfg.kiosk_screens)
        rows = [{**d.as_json(), "screen": d.id in screens} for d in page]
        return _json({"devices": rows, "total": len(devs),
                      "next": offset + limit if offset + limit < len(devs) else None})

    async def api_events(self, request: web.Request) -> web.Response:
        """Newest first, a page at a time: ?limit=1..1000 (100), ?before=<id>
        from the previous page's "next"."""
        try:
            limit = int(request.query.get("limit", "100"))
            before = int(request.query["before"]) if "before" in request.query else None
            if not 1 <= limit <= MAX_PAGE:
                raise ValueError(f"limit must be 1..{MAX_PAGE}")
        except ValueError as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        rows = await self.svc.store.events(limit, before)
        nxt = rows[-1]["id"] if len(rows) == limit else None
        return _json({"events": rows, "next": nxt})

    async def kiosk_screen(self, request: web.Request) -> web.Response:
        """A kiosk's screen as a picture, fetched from where the configuration
        says it can be seen (its URL holds a secret: never logged or shown)."""
        url = dict(self.svc.cfg.kiosk_screens).get(request.match_info["id"])
        if url is None:
            raise web.HTTPNotFound(text="no screen is configured for this kiosk\n")
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as s, \
                    s.get(url) as r:
                if r.status != 200 or r.content_type != "image/svg+xml":
                    raise web.HTTPBadGateway(text=f"the screen answered {r.status}\n")
                body = await r.read()
        except (aiohttp.ClientError, TimeoutError):
            raise web.HTTPBadGateway(text="the screen cannot be reached\n") from None
        # Shown as an <img>: no script in it runs; nothing from it is kept.
        return web.Response(body=body, content_type="image/svg+xml", headers={
            "Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'; "
            "style-src 'unsafe-inline'", "X-Content-Type-Options": "nosniff"})

    async def api_metrics(self, request: web.Request) -> web.Response:
        outbox = {name: {"rows": n, "oldest_age_s": round(age, 1)}
                  for name, (n, age) in self.svc.backlog().items()}
        return _json({"counters": self.svc.metrics.snapshot(),
                      "inbound_backlog": self.svc.inbound_backlog(), "outbox": outbox,
                      "alarms": self.svc.alarms()})

    async def prometheus(self, request: web.Request) -> web.Response:
        """Prometheus's text format; a scraper sends the technician token it
        was given (`authorization: credentials_file:` in its scrape config)."""
        body = generate_latest(self._prometheus)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"ok": True, "site": self.svc.cfg.site})

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def fleet_page(self, request: web.Request) -> web.FileResponse:
        """The technician's dashboard: every device, live (huimin fleet prints the same)."""
        return web.FileResponse(STATIC / "fleet.html")


    async def api_device_register(self, request: web.Request) -> web.Response:
        """Body: {"id", "station", "kind", "command_key", "mqtt_password"?}
        (huimin provision): the device's command key, and on MQTT its broker
        password's hash (never the password itself)."""
        who = request[TECHNICIAN]
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body is a JSON object")
            dev, station, kind = body["id"], body["station"], body["kind"]
            if (why := device_id_problem(dev)) is not None:
                raise ValueError(why)
            if not isinstance(station, str) or not isinstance(kind, str):
                raise ValueError("station and kind are strings")
            key = body["command_key"]
            if not isinstance(key, str) or not _COMMAND_KEY.match(key):
                raise ValueError("command_key: 32 to 128 hex digits")
            mqtt_hash = body.get("mqtt_password")
            if mqtt_hash is not None and (not isinstance(mqtt_hash, str)
                                          or not _BROKER_HASH.match(mqtt_hash)):
                raise ValueError("mqtt_password: the broker's PBKDF2 hash ($7$...), "
                                 "not a password")
            replace = body.get("replace", False)
            if not isinstance(replace, bool):
                raise ValueError("replace is true or false")
            await self.svc.devices.register(dev, station, kind, key, mqtt_hash, replace=replace)
            log.info("device %s registered by %s", dev, who)
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": "bad request", "detail": str(exc)}, status=400)
        except Rejected as exc:
            return web.json_response({"error": exc.reason, "detail": str(exc)},
                                     status=400 if exc.reason == "bad_id" else 409)
        d = self.svc.registry.get(dev)
        return web.json_response(d.as_json() if d else {}, status=201)

    # -- over-the-air rollouts (huimin ota) ---------------------------------
    async def api_ota_list(self, request: web.Request) -> web.Response:
        return web.json_response([r.as_json() for r in self.svc.ota.rollouts.values()])

    async def api_ota_get(self, request: web.Request) -> web.Response:
        try:
            r = self.svc.ota.rollouts[int(request.match_info["id"])]
        except (KeyError, ValueError):
            return web.json_response({"error": "no such rollout"}, status=404)
        return web.json_response(r.as_json())

    async def api_ota_start(self, request: web.Request) -> web.Response:
        """Body: {"image": {"files": {path: base64}}, "devices": [...], "wave": n,
        "deadline_s": s}. The image comes signed; devices check the signature."""
        log.info("rollout requested by %s", request[TECHNICIAN])
        try:
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("devices"), list):
                raise ValueError('the body is {"image", "devices": [...], ...}')
            image = Image.from_upload(body["image"])
            r = self.svc.ota.start(image, [str(d) for d in body["devices"]],
                                   int(body.get("wave", 1)),
                                   float(body.get("deadline_s", 180.0)))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        except Rejected as exc:
            return web.json_response({"error": exc.reason, "detail": str(exc)}, status=409)
        return web.json_response(r.as_json(), status=202)


def _json(obj: Any) -> web.Response:
    return web.Response(text=json.dumps(obj, ensure_ascii=False), content_type="application/json")
