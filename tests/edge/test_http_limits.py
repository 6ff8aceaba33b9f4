"""The edge's HTTP doors hold against a client that is not polite (docs/security.md, "bad
input"): bodies are bounded (64K; an authenticated OTA upload more), an idle or trickling
connection is closed, sign-in is rate-limited per address, bytes that are not UTF-8 get a
400 or a 401 and never a 500, refusals are logged a few at a time, and a dashboard session
ends with the token it was opened with."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from edge.adapters.api_tokens import ApiTokens
from edge.adapters.http import webserver
from edge.adapters.http.auth import COOKIE, SIGN_IN_BURST
from tests.conftest import run
from tests.edge.test_http_auth import edge


def test_bodies_are_bounded_before_and_after_sign_in(tmp_path: Path) -> None:
    async def main() -> None:
        async with edge(tmp_path) as (_svc, base, token), aiohttp.ClientSession() as s:
            big = b"token=" + b"x" * (1024 * 1024)
            async with s.post(base + "/login", data=big, headers={
                    "Content-Type": "application/x-www-form-urlencoded"}) as r:
                assert r.status == 413
            auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            async with s.post(base + "/api/devices", data=b'{"id":"' + b"a" * 70_000 + b'"}',
                              headers=auth) as r:
                assert r.status == 413
            async with s.post(base + "/api/devices", data=b'{"id": "dock-b"}',
                              headers=auth) as r:
                assert r.status == 400  # within the bound: read, then refused for what it says
    run(main())


def test_bytes_that_are_not_utf8_get_400_or_401_never_500(tmp_path: Path) -> None:
    async def main() -> None:
        async with edge(tmp_path) as (svc, base, _token):
            host, port = base.removeprefix("http://").split(":")
            for request in [
                b"GET /api/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\x80"
                b"\r\n\r\n",
                b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-"
                b"urlencoded; charset=utf-8\r\nContent-Length: 9\r\n\r\ntoken=%FF",
                b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                b"boundary=b\r\nContent-Length: 58\r\n\r\n--b\r\nContent-Disposition: form-"
                b"data; name=\"token\"\r\n\r\n\xff\r\n--b--\r\n"]:
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(request)
                await writer.drain()
                status = (await reader.readline()).split()[1]
                writer.close()
                assert status in (b"400", b"401"), (request, status)
            assert svc.metrics.get("http.unauthorized") >= 1
    run(main())


def test_an_idle_or_trickling_connection_is_closed(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webserver, "IDLE_S", 1.0)

    async def main() -> None:
        async with edge(tmp_path) as (_svc, base, _token):
            host, port = base.removeprefix("http://").split(":")
            idle = await asyncio.open_connection(host, int(port))
            trickle = await asyncio.open_connection(host, int(port))
            trickle[1].write(b"GET / HTTP/1.1\r\n")
            writer = trickle[1]
            closed = False
            for _ in range(150):  # a byte of header every 0.2 s: never a whole request
                try:
                    writer.write(b"X")
                    await writer.drain()
                except ConnectionError:
                    closed = True  # the server hung up mid-trickle
                    break
                await asyncio.sleep(0.2)
            assert closed, "a connection trickling its headers for 30 s was kept"
            async with asyncio.timeout(60):
                assert await idle[0].read() == b""  # closed without a request
            for _, w in (idle, trickle):
                w.close()
    run(main())


def test_sign_in_is_rate_limited_per_address_and_refusals_logged_a_few_at_a_time(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with edge(tmp_path) as (svc, base, token), aiohttp.ClientSession() as s:
            caplog.set_level(logging.WARNING, logger="edge.http")
            statuses = []
            for _ in range(SIGN_IN_BURST + 5):
                async with s.post(base + "/login", data={"token": "wrong"}) as r:
                    statuses.append(r.status)
            assert statuses[:SIGN_IN_BURST] == [401] * SIGN_IN_BURST
            assert statuses[SIGN_IN_BURST:] == [429] * 5
            # Even the right token waits: the address is over its budget for the window.
            async with s.post(base + "/login", data={"token": token},
                              allow_redirects=False) as r:
                assert r.status == 429
            for _ in range(60):
                async with s.get(base + "/api/events") as r:
                    assert r.status == 401
            assert svc.metrics.get("http.unauthorized") == SIGN_IN_BURST + 60
            lines = [r for r in caplog.records if r.name == "edge.http"]
            assert len(lines) <= 3 * 6, len(lines)  # a few per reason, not one per refusal
    run(main())


def test_a_session_ends_with_its_token(tmp_path: Path) -> None:
    async def main() -> None:
        async with edge(tmp_path) as (_svc, base, token), aiohttp.ClientSession(
                cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.post(base + "/login", data={"token": token},
                              allow_redirects=False) as r:
                assert r.status == 303 and COOKIE in r.cookies
            async with s.get(base + "/api/devices") as r:
                assert r.status == 200
            tokens = ApiTokens(tmp_path / "api-tokens.toml")
            assert tokens.revoke("wang")
            async with s.get(base + "/api/devices") as r:
                assert r.status == 401
            tokens.add("wang")  # a new token of the same name does not revive the session
            async with s.get(base + "/api/devices") as r:
                assert r.status == 401
    run(main())
