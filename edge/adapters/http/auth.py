"""Who may use which part of the edge's HTTP server (docs/security.md).

Public and read-only: the availability page, its station list, GBFS and
/healthz. Everything else wants a technician: a bearer token (`huimin token`,
what the CLI sends) or the session cookie the dashboard's sign-in form sets
(HttpOnly, SameSite=Strict). A request that changes anything must also be JSON
(a cross-site form cannot send that without a preflight) and, when a browser
says where it comes from (Origin), come from this server."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from edge.core.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from edge.adapters.api_tokens import ApiTokens
    from edge.core.metrics import Metrics

log = logging.getLogger("edge.http")

PUBLIC_PREFIXES = ("/gbfs/",)
PUBLIC_PATHS = {"/", "/healthz", "/api/stations", "/login", "/logout"}
COOKIE = "huimin_session"
SESSION_S = 12 * 3600  # a working day; then sign in again
MAX_SESSIONS = 200  # the oldest goes first

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TECHNICIAN = web.RequestKey("technician", str)  # who a request was authenticated as


# Bodies: what a sign-in or a registration needs is a few hundred bytes; only an OTA
# upload, once its sender is authenticated, may be large.
BODY_MAX = 64 * 1024
UPLOAD_MAX = 16 * 1024 * 1024
UPLOAD_PATHS = {"/api/ota"}
BODY_S = 30.0  # a body trickled slower than this is cut off (408)
SIGN_IN_BURST, SIGN_IN_WINDOW_S = 10, 60.0  # attempts per address
SIGN_IN_ADDRESSES = 4096  # the table's bound; the oldest window goes first


class Sessions:
    """Signed-in dashboards: random ids, in memory only (a restart signs
    everyone out), bounded. A session lives only as long as the token it was
    opened with: revoked (or replaced), and the session is gone too."""

    def __init__(self) -> None:
        self._by_id: dict[str, tuple[str, float, str]] = {}  # id -> (who, until, token hash)

    def open(self, who: str, token_hash: str = "") -> str:
        now = time.monotonic()
        self._by_id = {k: v for k, v in self._by_id.items() if v[1] > now}
        while len(self._by_id) >= MAX_SESSIONS:
            self._by_id.pop(next(iter(self._by_id)))
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = (who, now + SESSION_S, token_hash)
        return sid

    def who(self, sid: str, tokens: ApiTokens | None = None) -> str | None:
        entry = self._by_id.get(sid)
        if entry is None or entry[1] < time.monotonic():
            return None
        if tokens is not None and not tokens.still_valid(entry[0], entry[2]):
            self._by_id.pop(sid, None)
            return None
        return entry[0]

    def close(self, sid: str) -> None:
        self._by_id.pop(sid, None)


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser's cross-site request (the CLI sends none)
    want = f"{request.scheme}://{request.host}"
    forwarded = request.headers.get("X-Forwarded-Proto")
    return origin in (want, f"{forwarded}://{request.host}") if forwarded else origin == want


async def _read_body(request: web.Request, limit: int) -> web.Request | web.Response:
    """The request with its body read, within `limit` bytes and BODY_S seconds (then the
    handler's json()/post() use it), or the refusal."""
    if limit != request.client_max_size:
        request = request.clone(client_max_size=limit)
    try:
        async with asyncio.timeout(BODY_S):
            await request.read()
    except web.HTTPRequestEntityTooLarge:
        return web.json_response({"error": f"body over {limit} bytes"}, status=413)
    except TimeoutError:
        return web.json_response({"error": "body too slow"}, status=408)
    return request


def middleware(tokens: ApiTokens, sessions: Sessions, metrics: Metrics) -> Middleware:
    refusals = RateLimitedLog(log, burst=5)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        changing = request.method not in ("GET", "HEAD", "OPTIONS")
        if changing and not _same_origin(request):
            metrics.inc("http.refused", "cross_site")
            refusals.warning("cross_site", "refused %s %s: Origin %s is not this server",
                             request.method, request.path, request.headers.get("Origin"))
            return web.json_response({"error": "cross-site request refused"}, status=403)
        if _public(request.path):
            if request.body_exists:
                read = await _read_body(request, BODY_MAX)
                if isinstance(read, web.Response):
                    return read
                request = read
            return await handler(request)
        who = None
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            who = tokens.check(auth[7:])
        elif COOKIE in request.cookies:
            who = sessions.who(request.cookies[COOKIE], tokens)
        if who is None:
            metrics.inc("http.unauthorized")
            # One line per few refusals a minute: a scanner must not fill the journal.
            refusals.warning("unauthorized", "refused %s %s from %s: %s", request.method,
                             request.path, request.remote,
                             "bad credentials" if auth or COOKIE in request.cookies
                             else "no credentials")
            # A person's browser goes to the sign-in page; a program (the API,
            # a Prometheus scraper) gets a plain 401.
            if request.method == "GET" and not request.path.startswith("/api/") \
                    and request.path != "/metrics":
                raise web.HTTPSeeOther(f"/login?next={request.path}")
            return web.json_response(
                {"error": "unauthorized",
                 "detail": "a technician token is required (huimin token add; sent as "
                           "Authorization: Bearer), or sign in at /login"}, status=401,
                headers={"WWW-Authenticate": 'Bearer realm="huimin-edge"'})
        if changing and request.content_type != "application/json":
            metrics.inc("http.refused", "content_type")
            return web.json_response({"error": "send application/json"}, status=415)
        if request.body_exists:
            read = await _read_body(request, UPLOAD_MAX if request.path in UPLOAD_PATHS
                                    else BODY_MAX)
            if isinstance(read, web.Response):
                return read
            request = read
        request[TECHNICIAN] = who
        return await handler(request)

    return guard


LOGIN_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · technician</title>
<style>body{{font:16px/1.4 system-ui,sans-serif;margin:2rem;max-width:30rem}}
input{{font:inherit;width:100%;padding:.4rem;margin:.4rem 0}}.err{{color:#b42318}}</style>
</head><body><h1>Technician sign-in</h1>
<p>Paste your technician token (<code>huimin token add</code> on the edge made it).</p>
<p class="err">{error}</p>
<form method="post" action="/login"><input type="hidden" name="next" value="{next}">
<input id="token" name="token" type="password" autocomplete="off" autofocus>
<input id="signin" type="submit" value="Sign in"></form></body></html>"""


def _safe_next(value: str) -> str:
    # Only a path on this server: no open redirect.
    return value if value.startswith("/") and not value.startswith("//") else "/fleet"


async def login_form(request: web.Request) -> web.Response:
    import html

    nxt = html.escape(_safe_next(request.query.get("next", "/fleet")))
    return web.Response(text=LOGIN_PAGE.format(error="", next=nxt), content_type="text/html",
                        charset="utf-8")


def login_handler(tokens: ApiTokens, sessions: Sessions,
                  metrics: Metrics) -> Callable[[web.Request], Awaitable[web.Response]]:
    attempts: dict[str, tuple[float, int]] = {}  # address -> (window start, count)
    refusals = RateLimitedLog(log, burst=5)

    def too_many(address: str) -> bool:
        now = time.monotonic()
        start, n = attempts.pop(address, (now, 0))
        if now - start >= SIGN_IN_WINDOW_S:
            start, n = now, 0
        attempts[address] = (start, n + 1)  # re-inserted: the dict's order is the oldest
        while len(attempts) > SIGN_IN_ADDRESSES:
            attempts.pop(next(iter(attempts)))
        return n + 1 > SIGN_IN_BURST

    async def login(request: web.Request) -> web.Response:
        import html

        if too_many(request.remote or "?"):
            metrics.inc("http.refused", "sign_in_rate")
            refusals.warning("sign_in_rate", "sign-in attempts from %s over %d a minute: "
                             "refused for now", request.remote, SIGN_IN_BURST)
            return web.Response(text="Too many sign-in attempts; wait a minute.",
                                status=429, headers={"Retry-After": "60"})
        try:
            form = await request.post()
            nxt = _safe_next(str(form.get("next", "/fleet")))
            token = form.get("token", "")
            if not isinstance(token, str):
                raise ValueError("the token is text")
        except (ValueError, UnicodeDecodeError):
            metrics.inc("http.refused", "bad_form")
            return web.Response(text="Send the sign-in form as UTF-8 text.", status=400)
        who = tokens.check(token)
        if who is None:
            metrics.inc("http.unauthorized")
            refusals.warning("sign_in", "refused sign-in from %s: bad token", request.remote)
            return web.Response(text=LOGIN_PAGE.format(error="That token is not valid.",
                                                       next=html.escape(nxt)),
                                content_type="text/html", charset="utf-8", status=401)
        log.info("%s signed in to the dashboard from %s", who, request.remote)
        resp = web.HTTPSeeOther(nxt)
        resp.set_cookie(COOKIE, sessions.open(who, tokens.hash_of(who)), httponly=True,
                        samesite="Strict",
                        secure=request.secure or
                        request.headers.get("X-Forwarded-Proto") == "https",
                        max_age=SESSION_S, path="/")
        raise resp

    return login


def logout_handler(sessions: Sessions) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def logout(request: web.Request) -> web.Response:
        sessions.close(request.cookies.get(COOKIE, ""))
        resp = web.HTTPSeeOther("/login")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    return logout
