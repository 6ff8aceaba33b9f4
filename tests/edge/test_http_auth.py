"""The edge's HTTP server: public and read-only for the availability page,
GBFS and /healthz; everything else for technicians only (a bearer token or the
dashboard's session cookie); state-changing requests JSON and same-origin;
lists paged with a maximum (edge/adapters/http/auth.py, docs/security.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from edge.adapters.api_tokens import ApiTokens
from edge.config import parse
from edge.core.records import EventRecord
from edge.runtime import Edge
from tests.conftest import run


@asynccontextmanager
async def edge(tmp: Path) -> AsyncIterator[tuple[Edge, str, str]]:
    token = ApiTokens(tmp / "api-tokens.toml").add("wang")
    svc = Edge(parse({
        "edge": {"site": "t", "http_port": 0, "db": str(tmp / "edge.db")},
        "stations": [{"id": "s1", "name_zh": "一号站", "lat": 30.6, "lon": 119.6,
                      "devices": ["dock-a"]}]}))
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    await svc.ready.wait()
    try:
        yield svc, f"http://127.0.0.1:{svc.http_port}", token
    finally:
        stop.set()
        await task


def test_public_pages_open_everything_else_for_technicians(tmp_path: Path) -> None:
    async def main() -> None:
        async with edge(tmp_path) as (svc, base, token), aiohttp.ClientSession() as s:
            for path in ("/", "/api/stations", "/gbfs/3.0/gbfs.json", "/healthz", "/login"):
                async with s.get(base + path) as r:
                    assert r.status == 200, path
            bearer = {"Authorization": f"Bearer {token}"}
            for path in ("/api/devices", "/api/events", "/api/metrics", "/api/ota"):
                async with s.get(base + path) as r:
                    assert r.status == 401, path
                    assert "WWW-Authenticate" in r.headers
                async with s.get(base + path, headers={"Authorization": "Bearer hmt_x"}) as r:
                    assert r.status == 401, path
                async with s.get(base + path, headers=bearer) as r:
                    assert r.status == 200, path
            async with s.get(base + "/fleet", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/login?next=/fleet"
            assert svc.metrics.get("http.unauthorized") == 9
            # A revoked token stops working at once (the file is reread).
            ApiTokens(tmp_path / "api-tokens.toml").revoke("wang")
            async with s.get(base + "/api/devices", headers=bearer) as r:
                assert r.status == 401
    run(main())


def test_changes_need_json_from_this_origin(tmp_path: Path) -> None:
    async def main() -> None:
        async with edge(tmp_path) as (svc, base, token), aiohttp.ClientSession() as s:
            body = '{"id": "dock-b", "station": "s1", "kind": "dock", "command_key": "' + \
                "ab" * 32 + '"}'
            auth = {"Authorization": f"Bearer {token}"}
            # text/plain: what a cross-site form or fetch without a preflight can send
            async with s.post(base + "/api/devices", data=body,
                              headers={**auth, "Content-Type": "text/plain"}) as r:
                assert r.status == 415
            async with s.post(base + "/api/devices", data=body,
                              headers={**auth, "Content-Type": "application/json",
                                       "Origin": "http://evil.example"}) as r:
                assert r.status == 403
            assert svc.registry.get("dock-b") is None
            assert svc.metrics.get("http.refused", "content_type") == 1
            assert svc.metrics.get("http.refused", "cross_site") == 1
            async with s.post(base + "/api/devices", data=body,
                              headers={**auth, "Content-Type": "application/json",
                                       "Origin": base}) as r:
                assert r.status == 201
            assert svc.registry.get("dock-b") is not None
    run(main())


def test_dashboard_signs_in_with_a_form_and_gets_a_strict_cookie(tmp_path: Path) -> None:
    async def main() -> None:
        # unsafe=True: aiohttp's jar otherwise keeps no cookie from an IP address
        async with edge(tmp_path) as (_svc, base, token), aiohttp.ClientSession(
                cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.post(base + "/login", data={"token": "hmt_guess", "next": "/fleet"},
                              allow_redirects=False) as r:
                assert r.status == 401 and "huimin_session" not in r.cookies
            async with s.post(base + "/login", data={"token": token, "next": "/fleet"},
                              headers={"Origin": "http://evil.example"},
                              allow_redirects=False) as r:
                assert r.status == 403  # a sign-in forced from another site
            async with s.post(base + "/login", data={"token": token, "next": "//evil.example"},
                              allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/fleet"  # no open redirect
                cookie = r.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            async with s.get(base + "/api/devices") as r:  # the cookie jar sends it
                assert r.status == 200
            async with s.get(base + "/fleet") as r:
                assert r.status == 200 and "Fleet" in await r.text()
            async with s.post(base + "/logout", allow_redirects=False) as r:
                assert r.status == 303
            async with s.get(base + "/api/devices") as r:
                assert r.status == 401
    run(main())


def test_lists_are_paged_with_a_maximum(tmp_path: Path) -> None:
    async def main() -> None:
        async with edge(tmp_path) as (svc, base, token), aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {token}"}) as s:
            for i in range(25):
                await svc.store.submit(EventRecord("dock-a", "e", i, "s1", "returned", 0,
                                                     f"0B{i:08X}", None, 1.0, None))
            for bad in ("-1", "0", "1001", "x"):
                async with s.get(f"{base}/api/events?limit={bad}") as r:
                    assert r.status == 400, bad
            seen: list[int] = []
            url = f"{base}/api/events?limit=10"
            while True:
                async with s.get(url) as r:
                    page = await r.json()
                seen += [e["seq"] for e in page["events"]]
                if page["next"] is None:
                    break
                url = f"{base}/api/events?limit=10&before={page['next']}"
            assert seen == list(range(24, -1, -1))
            async with s.get(f"{base}/api/devices?limit=1") as r:
                page = await r.json()
                assert len(page["devices"]) == 1 and page["total"] == 1 and page["next"] is None
    run(main())


def test_beyond_the_pi_only_over_https(tmp_path: Path) -> None:
    """An edge listening beyond loopback must serve HTTPS itself (a certificate
    from the county CA) or sit behind a TLS proxy; served so, a client that
    trusts the county CA gets the pages, and its session cookie is Secure."""
    import ssl

    import pytest

    from edge.config import ConfigError
    from tools.ca import county_tls

    base_cfg = {"edge": {"site": "t", "http_port": 0, "db": str(tmp_path / "edge.db"),
                         "http_host": "0.0.0.0"}}
    with pytest.raises(ConfigError, match="HTTPS"):
        parse(base_cfg)
    scrape = {"edge": {**base_cfg["edge"], "http_host": "127.0.0.1",
                       "metrics_host": "10.0.0.5", "metrics_port": 9108}}
    with pytest.raises(ConfigError, match=r"metrics_host.*HTTPS"):
        parse(scrape)  # Prometheus's port too: a token never crosses a network in clear
    tls = county_tls(tmp_path / "ca", ["127.0.0.1"])
    token = ApiTokens(tmp_path / "api-tokens.toml").add("wang")
    cfg = parse({"edge": {**base_cfg["edge"], "http_host": "127.0.0.1",
                          "tls_cert": str(tls.cert), "tls_key": str(tls.key)}})

    async def main() -> None:
        svc = Edge(cfg)
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        await svc.ready.wait()
        trust = ssl.create_default_context(cafile=str(tls.ca))
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as s:
                base = f"https://127.0.0.1:{svc.http_port}"
                async with s.get(base + "/healthz") as r:
                    assert r.status == 200
                async with s.post(base + "/login", data={"token": token},
                                  allow_redirects=False) as r:
                    assert r.status == 303 and "Secure" in r.headers["Set-Cookie"]
            async with aiohttp.ClientSession() as s:  # no trust in the county CA
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await s.get(f"https://127.0.0.1:{svc.http_port}/healthz")
        finally:
            stop.set()
            await task
    run(main())
