"""Development backend: a small, real stand-in for the city-service backend,
used by `huimin sim` and the tests. It receives the edge's signed webhook
(checks the HMAC and each item's idempotency key, stores everything durably
in SQLite, refuses duplicates), serves a city-wide view and a JSON API of what
it received, and issues rentals that edges collect by long-poll. Faults can be
injected for tests: the next N posts fail with a status, or every answer is
delayed after the items are stored."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import sqlite3
import time
import uuid
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web

from cloud_bridge.signing import NONCE, sign_answer, verify
from edge.adapters.http.webserver import serve
from edge.adapters.store import insert_rows, per_statement, transaction

log = logging.getLogger("backend")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (key TEXT, site TEXT, station TEXT, type TEXT,
    device TEXT, slot INTEGER, bike TEXT, rental_id TEXT, body TEXT, received REAL,
    PRIMARY KEY (site, key));
CREATE TABLE IF NOT EXISTS stations (site TEXT, station TEXT, version INTEGER, body TEXT,
    received REAL, PRIMARY KEY (site, station));
CREATE TABLE IF NOT EXISTS funds (token TEXT, programme TEXT, amount_fen INTEGER, paid TEXT,
    status TEXT);
CREATE INDEX IF NOT EXISTS funds_token ON funds (token);
CREATE TABLE IF NOT EXISTS rentals (id TEXT PRIMARY KEY, site TEXT, station TEXT, slot INTEGER,
    rider TEXT, state TEXT, result TEXT, issued REAL, delivered REAL, params TEXT);
"""
REDELIVER_S = 30.0  # a rental sent to an edge without a result is offered again after this


OPERATOR_PATHS = ("/api/rentals", "/api/funds", "/_faults")
# Read with the operator's token too: every site's rides, devices and times.
OPERATOR_READS = ("/api/events", "/api/trips")


class Malformed(ValueError):
    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


class DevBackend:
    def __init__(self, db: Path, secret: str | dict[str, str]) -> None:
        """secret: each site's key ({site: key}), as a city runs it; one str
        serves every site (a development shortcut: any edge could act for any
        other)."""
        self.db_path = db
        self.secrets = secret if isinstance(secret, dict) else None
        self.secret = secret if isinstance(secret, str) else ""
        self.db = sqlite3.connect(db, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self._per_statement = per_statement(self.db)
        self.stats = {"posts": 0, "items": 0, "duplicates": 0, "bad_signature": 0,
                      "malformed": 0, "stale_status": 0, "injected_failures": 0,
                      "unauthorized": 0}
        self.fail_next = 0
        self.fail_until = 0.0  # monotonic: every webhook fails until then (an outage)
        self.fail_status = 503
        self.retry_after: float | None = None
        self.delay_s = 0.0
        self.tamper_answers = False  # tests: answers changed after signing
        self._rentals_changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.port = 0
        # The city's own operations (issue a rental, add fund records, inject
        # faults) need the operator's token: no state-changing call without one.
        self.operator_token = secrets.token_urlsafe(24)
        app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=[self._operator])
        app.add_routes([
            web.post("/webhook", self.webhook),
            web.get("/edge/{site}/rentals", self.edge_rentals),
            web.post("/api/rentals", self.new_rental),
            web.get("/api/rentals/{id}", self.get_rental),
            web.get("/api/events", self.api_events),
            web.get("/api/trips", self.api_trips),
            web.get("/api/stations", self.api_stations),
            web.get("/api/stats", self.api_stats),
            web.post("/_faults", self.faults),
            web.get("/edge/{site}/funds/{token}", self.fund_lookup),
            web.post("/api/funds", self.add_funds),
            web.get("/gbfs/manifest.json", self.gbfs_manifest),
            web.get("/", self.page),
        ])
        # Each site's own GBFS system (system_id, its gbfs.json base URL), for
        # the city's manifest.json (GBFS v3).
        self.gbfs_systems: dict[str, tuple[str, str]] = {}
        # Each site's stations, where the city knows them: a site's event or status for
        # a station that is not its own is refused (Malformed), whoever signed it.
        self.site_stations: dict[str, set[str]] = {}
        self.site_devices: dict[str, set[str]] = {}  # and its devices, likewise
        self.app = app

    @web.middleware
    async def _operator(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if (request.method == "POST" and request.path in OPERATOR_PATHS) or \
                request.path in OPERATOR_READS:
            got = request.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode(), f"Bearer {self.operator_token}".encode()):
                self.stats["unauthorized"] += 1
                return web.json_response({"error": "the operator's token is required"},
                                         status=401)
        resp: web.StreamResponse = await handler(request)
        return resp

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner, self.port = await serve(self.app, host, port)
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        # Long-polls in progress answer now instead of holding the shutdown.
        self._closing = True
        async with self._rentals_changed:
            self._rentals_changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
        self.db.close()

    def _key(self, site: object) -> str:
        """The site's key ("" for a site it does not know: _verify refuses it)."""
        if self.secrets is None:
            return self.secret
        return self.secrets.get(site, "") if isinstance(site, str) else ""

    def _verify(self, site: object, data: bytes, headers: Any) -> str | None:
        key = self._key(site)
        if len(key) < 16:
            return "unknown site"
        return verify(key, data, headers)

    # -- webhook -----------------------------------------------------------------
    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.stats["posts"] += 1
        if self.fail_next > 0 or time.monotonic() < self.fail_until:
            self.fail_next = max(0, self.fail_next - 1)
            self.stats["injected_failures"] += 1
            headers = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None \
                else {}
            return web.Response(status=self.fail_status, text="injected failure\n",
                                headers=headers)
        try:  # the site says whose key signed it; nothing is stored before it verifies
            doc = json.loads(body)
            claimed = doc.get("site")
        except (ValueError, AttributeError, RecursionError):
            doc = claimed = None
        why = self._verify(claimed, body, request.headers)
        if why is not None:
            self.stats["bad_signature"] += 1
            log.warning("webhook refused: %s", why)
            return web.json_response({"error": "unauthorized", "reason": why}, status=401)
        try:
            site = doc["site"]
            items = doc["items"]
            assert isinstance(site, str) and isinstance(items, list)
            assert all(isinstance(it, dict) for it in items)
        except (ValueError, KeyError, AssertionError, TypeError):
            self.stats["malformed"] += 1
            return web.json_response({"error": "malformed"}, status=400)
        try:
            return await self._store(site, items)
        except (sqlite3.Error, TypeError, ValueError, OverflowError) as exc:
            # A value of the wrong type for its column: the batch's transaction
            # was rolled back; the sender's item is malformed.
            self.stats["malformed"] += 1
            return web.json_response({"error": f"malformed item: {exc}"[:200]}, status=400)

    async def _store(self, site: str, items: list[dict[str, Any]]) -> web.Response:
        try:
            accepted, dups = self.store_items(site, items)
        except Malformed as exc:
            self.stats["malformed"] += 1
            return web.json_response({"error": str(exc)}, status=exc.status)
        if self.delay_s:
            # Slow after the commit: a sender that dies now never hears that
            # its batch was stored (the hard case for exactly-once).
            await asyncio.sleep(self.delay_s)
        return web.json_response({"accepted": len(accepted), "duplicates": dups})

    def store_items(self, site: str, items: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
        """One site's items in one transaction, whichever way they came (a
        webhook, the city tier): events once by key, a station's status only
        if newer, rental outcomes onto their rental. Malformed: nothing stored."""
        return self.store_sites([(site, items)])

    def store_sites(self, batches: list[tuple[str, list[dict[str, Any]]]]
                    ) -> tuple[list[str], list[str]]:
        """Several sites' items in one transaction (one commit, one fsync: the
        city tier hands them over mixed)."""
        accepted: list[str] = []
        dups: list[str] = []
        now = time.time()
        with transaction(self.db):
            for site, items in batches:
                self._store_site(site, items, now, accepted, dups)
        self.stats["duplicates"] += len(dups)
        return accepted, dups

    def _store_site(self, site: str, items: list[dict[str, Any]], now: float,
                    accepted: list[str], dups: list[str]) -> None:
        own = self.site_stations.get(site)
        devices = self.site_devices.get(site)
        events: list[tuple[Any, ...]] = []  # stored together, after the loop
        for it in items:
            key, kind, b = it.get("key"), it.get("kind"), it.get("body")
            if not isinstance(key, str) or not isinstance(b, dict):
                raise Malformed("malformed item")
            self.stats["items"] += 1
            # What a site sends speaks for that site only: its name, its stations.
            if b.get("site", site) != site:
                raise Malformed(f"an item of site {b.get('site')!r} from site {site!r}", 403)
            station = b.get("station_id") if kind == "status" else b.get("station")
            if own is not None and kind in ("event", "status") and station not in own:
                raise Malformed(f"station {station!r} is not site {site!r}'s", 403)
            if devices is not None and kind == "event" and b.get("device") not in devices:
                raise Malformed(f"device {b.get('device')!r} is not site {site!r}'s", 403)
            if kind == "event":
                events.append((key, site, b.get("station"), b.get("type"), b.get("device"),
                               b.get("slot"), b.get("bike"), b.get("rental_id"), json.dumps(b),
                               now))
            elif kind == "status":
                cur = self.db.execute(
                    "INSERT INTO stations VALUES (?,?,?,?,?) ON CONFLICT(site, station) DO"
                    " UPDATE SET version=excluded.version, body=excluded.body,"
                    " received=excluded.received WHERE excluded.version > stations.version",
                    (site, b.get("station_id"), b.get("version", 0), json.dumps(b), now))
                if not cur.rowcount:
                    self.stats["stale_status"] += 1
                accepted.append(key)
            elif kind == "rental":
                state = b.get("state") or ("rented" if b.get("ok") else "failed")
                # Only a rental issued to this site: another site cannot close it.
                self.db.execute("UPDATE rentals SET state = ?, result = ? WHERE id = ? "
                                "AND site = ?", (state, json.dumps(b), b.get("rental_id"), site))
                accepted.append(key)
            else:
                raise Malformed(f"unknown kind {kind!r}", 422)
        self._insert_events(events, accepted, dups)

    def _insert_events(self, events: list[tuple[Any, ...]], accepted: list[str],
                       dups: list[str]) -> None:
        """Events once by key, many rows a statement (a row each was a sixth of a
        backlog's drain, bench/peer.py); those stored before are duplicates."""
        db = self.db
        top = db.execute("SELECT max(rowid) FROM events").fetchone()[0] or 0
        before = db.total_changes
        insert_rows(db, self._per_statement, "INSERT OR IGNORE INTO events VALUES ", 10, events)
        if db.total_changes - before == len(events):
            accepted += [e[0] for e in events]
            return
        # Only this statement wrote past `top`: no need to say the site (which would
        # make SQLite walk its index instead of the range of rowids).
        fresh = {k for (k,) in db.execute("SELECT key FROM events WHERE rowid > ?",
                                          (top,))}
        for e in events:
            (accepted if e[0] in fresh else dups).append(e[0])
            fresh.discard(e[0])  # a second copy in the batch is a duplicate

    # -- rentals -----------------------------------------------------------------
    async def new_rental(self, request: web.Request) -> web.Response:
        try:
            req = await request.json()
            site, station = req["site"], req["station"]
            slot = req.get("slot")
            rid = req.get("rental_id") or uuid.uuid4().hex[:12]
            if not (isinstance(site, str) and isinstance(station, str) and isinstance(rid, str)
                    and (slot is None or (type(slot) is int and 0 <= slot < 64))):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "need site and station (text), slot 0..63"},
                                     status=400)
        with transaction(self.db):
            cur = self.db.execute(
                "INSERT OR IGNORE INTO rentals VALUES (?,?,?,?,?,?,?,?,?,?)",
                (rid, site, station, slot, str(req.get("rider", "")), "issued", None, time.time(),
                 None, json.dumps({k: req[k] for k in ("hold_min", "reservation_id")
                                   if k in req})))
        if not cur.rowcount:
            return web.json_response({"error": "duplicate rental id", "rental_id": rid},
                                     status=409)
        async with self._rentals_changed:
            self._rentals_changed.notify_all()
        return web.json_response({"rental_id": rid, "state": "issued"}, status=201)

    def due(self, site: str, again_after_s: float | None = REDELIVER_S) -> list[dict[str, Any]]:
        """Rentals to hand this site; each handed again after again_after_s
        without a result (a long-poll's answer can be lost), or never again
        (None: the city tier's consumer redelivers until the edge acks)."""
        now = time.time()
        again = now - again_after_s if again_after_s is not None else float("-inf")
        rows = self.db.execute(
            "SELECT id, station, slot, params FROM rentals WHERE site = ? AND state = 'issued'"
            " AND (delivered IS NULL OR delivered < ?)", (site, again)).fetchall()
        if rows:
            with transaction(self.db):
                self.db.executemany("UPDATE rentals SET delivered = ? WHERE id = ?",
                                    [(now, r[0]) for r in rows])
        return [{"rental_id": r[0], "station": r[1], "slot": r[2], **json.loads(r[3] or "{}")}
                for r in rows]

    def not_delivered(self, rental_id: str) -> None:
        with transaction(self.db):
            self.db.execute("UPDATE rentals SET delivered = NULL WHERE id = ?", (rental_id,))

    @property
    def rentals_changed(self) -> asyncio.Condition:
        return self._rentals_changed

    async def edge_rentals(self, request: web.Request) -> web.Response:
        if self._verify(request.match_info["site"], request.path_qs.encode(),
                        request.headers) is not None:
            self.stats["bad_signature"] += 1
            return web.json_response({"error": "unauthorized"}, status=401)
        site = request.match_info["site"]
        wait = min(float(request.query.get("wait", "0")), 30.0)
        deadline = time.monotonic() + wait
        while True:
            if request.transport is None or request.transport.is_closing():
                # The edge that asked has gone (killed, restarted): rentals
                # handed to it now would wait REDELIVER_S for nothing.
                return web.Response(status=499)
            due = self.due(site)
            left = deadline - time.monotonic()
            if due or left <= 0 or self._closing:
                return self._answer(request, {"rentals": due})
            async with self._rentals_changed:
                try:
                    async with asyncio.timeout(left):
                        await self._rentals_changed.wait()
                except TimeoutError:
                    pass

    async def get_rental(self, request: web.Request) -> web.Response:
        row = self.db.execute("SELECT id, site, station, slot, state, result FROM rentals"
                              " WHERE id = ?", (request.match_info["id"],)).fetchone()
        if row is None:
            return web.json_response({"error": "unknown rental"}, status=404)
        return web.json_response({"rental_id": row[0], "site": row[1], "station": row[2],
                                  "slot": row[3], "state": row[4],
                                  "result": json.loads(row[5]) if row[5] else None})

    # -- kiosk fund lookups ------------------------------------------------------
    # Records are keyed by the kiosk's lookup token (a keyed hash made on the
    # kiosk): this backend never sees an ID number. Amounts are in fen.
    async def add_funds(self, request: web.Request) -> web.Response:
        try:
            req = await request.json()
            token, records = req["token"], req["records"]
            rows = [(token, r["programme"], int(r["amount_fen"]), r["paid"], r["status"])
                    for r in records]
            if not all(isinstance(v, str) for row in rows for v in (row[0], *row[3:])) or \
                    not all(isinstance(row[1], str) and -2**62 < row[2] < 2**62 for row in rows):
                raise ValueError
        except (ValueError, KeyError, TypeError, OverflowError):
            return web.json_response({"error": "need token and records"}, status=400)
        with transaction(self.db):
            self.db.executemany("INSERT INTO funds VALUES (?,?,?,?,?)", rows)
        return web.json_response({"added": len(rows)}, status=201)

    async def fund_lookup(self, request: web.Request) -> web.Response:
        if self._verify(request.match_info["site"], request.path_qs.encode(),
                        request.headers) is not None:
            self.stats["bad_signature"] += 1
            return web.json_response({"error": "unauthorized"}, status=401)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        rows = self.db.execute("SELECT programme, amount_fen, paid, status FROM funds"
                               " WHERE token = ? ORDER BY paid DESC",
                               (request.match_info["token"],)).fetchall()
        if not rows:
            return self._answer(request, {"error": "unknown token"}, 404)
        return self._answer(request, {"records": [
            {"programme": p, "amount_fen": a, "paid": d, "status": st} for p, a, d, st in rows],
            "as_of": time.time()})

    def _answer(self, request: web.Request, doc: dict[str, Any],
                status: int = 200) -> web.Response:
        """An answer an edge will act on: signed with the site's key over the
        nonce of its request (cloud_bridge/signing.py)."""
        body = json.dumps(doc).encode()
        headers = sign_answer(self._key(request.match_info.get("site")),
                              request.headers.get(NONCE, ""), body)
        if self.tamper_answers:  # a test's man in the middle, after the signature
            body = body.replace(b'"records"', b'"records" ')
        return web.Response(body=body, status=status, headers=headers,
                            content_type="application/json")

    # -- views -------------------------------------------------------------------
    def events(self, site: str | None = None) -> list[dict[str, Any]]:
        """What it received, in arrival order; one site's only if given."""
        rows = self.db.execute("SELECT key, site, body FROM events WHERE ? IS NULL OR site = ?"
                               " ORDER BY received, key", (site, site)).fetchall()
        # The site is the one it came from (its account), whatever the body says.
        return [{"key": k, **json.loads(b), "site": st} for k, st, b in rows]

    def trips(self) -> list[dict[str, Any]]:
        """Each bike's rides: a "rented" and the next "returned" of the same
        bike, timed by when they happened ("at"), not when they arrived."""
        open_: dict[tuple[str, str], dict[str, Any]] = {}  # (site, bike): a site's own
        out = []
        for e in sorted(self.events(), key=lambda e: (e.get("at") or 0, e["key"])):
            bike = e.get("bike")
            if not bike:
                continue
            ride = (e["site"], bike)
            if e.get("type") == "rented":
                open_[ride] = e
            elif e.get("type") == "returned" and ride in open_:
                start = open_.pop(ride)
                out.append({"bike": bike, "from": start.get("station"), "to": e.get("station"),
                            "start": start["at"], "end": e["at"],
                            "seconds": round(e["at"] - start["at"], 3),
                            "clocks": [start.get("clock"), e.get("clock")]})
        return out

    async def api_trips(self, request: web.Request) -> web.Response:
        return web.json_response({"trips": self.trips()})

    def stations(self) -> dict[str, dict[str, Any]]:
        rows = self.db.execute("SELECT site, station, body FROM stations").fetchall()
        return {f"{s}/{st}": json.loads(b) for s, st, b in rows}

    async def api_events(self, request: web.Request) -> web.Response:
        return web.json_response({"events": self.events()})

    async def api_stations(self, request: web.Request) -> web.Response:
        return web.json_response({"stations": self.stations()})

    async def api_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats)

    async def gbfs_manifest(self, request: web.Request) -> web.Response:
        """GBFS v3's manifest.json: the city's index of every site's GBFS
        system, each with the versions its edge serves."""
        when = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        datasets = [{"system_id": sid, "versions": [
            {"version": v, "url": f"{base}/gbfs/{v}/gbfs.json"} for v in ("2.3", "3.0")]}
            for sid, base in sorted(self.gbfs_systems.values())]
        return web.json_response({"last_updated": when, "ttl": 60, "version": "3.0",
                                  "data": {"datasets": datasets}})

    async def faults(self, request: web.Request) -> web.Response:
        f = await request.json()
        self.fail_next = int(f.get("fail", 0))
        self.fail_status = int(f.get("status", 503))
        self.retry_after = f.get("retry_after")
        self.delay_s = float(f.get("delay", 0))
        return web.json_response({"ok": True})

    async def page(self, request: web.Request) -> web.Response:
        """The city at a glance: each site's totals, the counters, every station."""
        stations = self.stations()
        per_site: dict[str, list[dict[str, Any]]] = {}
        for key, st in stations.items():
            per_site.setdefault(key.split("/", 1)[0], []).append(st)
        events = dict(self.db.execute("SELECT site, count(*) FROM events GROUP BY site"))
        rentals = dict(self.db.execute(
            "SELECT site, count(*) FROM rentals WHERE state = 'rented' GROUP BY site"))
        sites = sorted(set(per_site) | set(events))

        def num(v: object) -> str:
            return str(v) if isinstance(v, int) else "-"

        site_rows = "".join(
            f"<tr><td>{escape(site)}</td><td>{len(per_site.get(site, []))}</td>"
            f"<td>{sum(st.get('bikes_available') or 0 for st in per_site.get(site, []))}</td>"
            f"<td>{sum(st.get('docks_available') or 0 for st in per_site.get(site, []))}</td>"
            f"<td>{events.get(site, 0)}</td><td>{rentals.get(site, 0)}</td></tr>"
            for site in sites)
        counter_rows = "".join(f"<tr><td>{escape(k)}</td><td>{v}</td></tr>"
                               for k, v in self.stats.items())
        station_rows = "".join(
            f"<tr><td>{escape(k)}</td><td>{num(v.get('bikes_available'))}</td>"
            f"<td>{num(v.get('docks_available'))}</td>"
            f"<td>{'open' if v.get('is_renting') else 'closed'}</td></tr>"
            for k, v in sorted(stations.items()))
        html = ("<!doctype html><html lang=en><meta charset=utf-8>"
                "<meta name=viewport content='width=device-width'>"
                "<title>City backend (development)</title><style>"
                "body{font:16px/1.4 system-ui,sans-serif;margin:1.5em}"
                "table{border-collapse:collapse;margin:0 0 1.5em}"
                "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
                "td:not(:first-child){text-align:right}</style>"
                "<h1>City backend (development)</h1>"
                "<p>GBFS for the whole city: <a href='/gbfs/manifest.json'>manifest.json</a>;"
                " JSON: <a href='/api/stations'>stations</a>, <a href='/api/events'>events</a>,"
                " <a href='/api/stats'>counters</a>.</p>"
                "<h2>Sites</h2><table><tr><th>site</th><th>stations</th><th>bikes</th>"
                f"<th>free docks</th><th>events</th><th>rentals</th></tr>{site_rows}</table>"
                "<h2>Counters</h2><table><tr><th>counter</th><th>count</th></tr>"
                f"{counter_rows}</table>"
                "<h2>Stations</h2><table><tr><th>site/station</th><th>bikes</th>"
                f"<th>free docks</th><th>state</th></tr>{station_rows}</table></html>")
        return web.Response(text=html, content_type="text/html")
