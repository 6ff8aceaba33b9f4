"""Who may use which part of the edge's HTTP server (docs/security.md).

Public and read-only: the availability page, its station list, GBFS and
/healthz. Everything else wants a technician: a bearer token (`huimin token`,
what the CLI sends) or the session cookie the dashboard's sign-in form sets
(HttpOnly, SameSite=Strict). A request that changes anything must also be JSON
(a cross-site form cannot send that without a preflight) and, when a browser
says where it comes from (Origin), come from this server."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

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


class Sessions:
    """Signed-in dashboards: random ids, in memory only (a restart signs
    everyone out), bounded."""

    def __init__(self) -> None:
        self._by_id: dict[str, tuple[str, float]] = {}

    def open(self, who: str) -> str:
        now = time.monotonic()
        self._by_id = {k: v for k, v in self._by_id.items() if v[1] > now}
        while len(self._by_id) >= MAX_SESSIONS:
            self._by_id.pop(next(iter(self._by_id)))
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = (who, now + SESSION_S)
        return sid

    def who(self, sid: str) -> str | None:
        entry = self._by_id.get(sid)
        if entry is None or entry[1] < time.monotonic():
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


def middleware(tokens: ApiTokens, sessions: Sessions, metrics: Metrics) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        changing = request.method not in ("GET", "HEAD", "OPTIONS")
        if changing and not _same_origin(request):
            metrics.inc("http.refused", "cross_site")
            log.warning("refused %s %s: Origin %s is not this server", request.method,
                        request.path, request.headers.get("Origin"))
            return web.json_response({"error": "cross-site request refused"}, status=403)
        if _public(request.path):
            return await handler(request)
        who = None
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            who = tokens.check(auth[7:])
        elif COOKIE in request.cookies:
            who = sessions.who(request.cookies[COOKIE])
        if who is None:
            metrics.inc("http.unauthorized")
            log.warning("refused %s %s from %s: %s", request.method, request.path,
                        request.remote, "bad credentials" if auth or COOKIE in request.cookies
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
        request[TECHNICIAN] = who
        return await handler(request)

    return guard


LOGIN_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
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
    async def login(request: web.Request) -> web.Response:
        import html

        form = await request.post()
        nxt = _safe_next(str(form.get("next", "/fleet")))
        who = tokens.check(str(form.get("token", "")))
        if who is None:
            metrics.inc("http.unauthorized")
            log.warning("refused sign-in from %s: bad token", request.remote)
            return web.Response(text=LOGIN_PAGE.format(error="That token is not valid.",
                                                       next=html.escape(nxt)),
                                content_type="text/html", charset="utf-8", status=401)
        log.info("%s signed in to the dashboard from %s", who, request.remote)
        resp = web.HTTPSeeOther(nxt)
        resp.set_cookie(COOKIE, sessions.open(who), httponly=True, samesite="Strict",
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
