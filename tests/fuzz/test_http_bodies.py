"""HTTP bodies from outside, at the edge's API (with a valid technician token,
so the body is what gets parsed) and at the development backend: random JSON
and random bytes get a 4xx, never a 500, and the servers keep answering."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import aiohttp

from cloud_bridge.signing import sign
from hardware.sim.backend import DevBackend
from tests.conftest import run
from tests.edge.test_http_auth import edge

N = 150


def _value(rng: random.Random, depth: int = 0) -> Any:
    k = rng.randrange(8 if depth < 3 else 5)
    if k == 0:
        return None
    if k == 1:
        return rng.random() < 0.5
    if k == 2:
        return rng.randint(-2**63, 2**63)
    if k == 3:
        return rng.random() * 1e300
    if k == 4:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(12)))
    if k == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if k == 6:
        return {rng.choice(["id", "station", "kind", "command_key", "mqtt_password", "image",
                            "devices", "wave", "files", "token", "records", "site", "slot",
                            "x"]): _value(rng, depth + 1) for _ in range(rng.randrange(6))}
    return {"files": {"manifest.json": "e30=", "a": _value(rng, depth + 1)}}


def _bodies(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(N):
        if i % 5 == 0:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(200))))
        else:
            out.append(json.dumps(_value(rng)).encode())
    return out


def test_edge_api_bodies(tmp_path: Path) -> None:
    async def main() -> None:
        async with edge(tmp_path) as (svc, base, token), aiohttp.ClientSession(headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"}) as s:
            for body in _bodies(1):
                for path in ("/api/devices", "/api/ota"):
                    async with s.post(base + path, data=body) as r:
                        assert r.status < 500, (path, body[:80], await r.text())
            async with s.get(base + "/healthz") as r:
                assert r.status == 200
            assert svc.metrics.get("rx.error") == 0
    run(main())


def test_development_backend_bodies(tmp_path: Path) -> None:
    async def main() -> None:
        backend = DevBackend(tmp_path / "b.db", "k" * 16)
        url = await backend.start()
        try:
            async with aiohttp.ClientSession() as s:
                for body in _bodies(2):
                    async with s.post(f"{url}/webhook", data=body,
                                      headers=sign("k" * 16, body)) as r:
                        assert r.status < 500, (body[:80], await r.text())
                    for path in ("/api/funds", "/api/rentals"):
                        async with s.post(url + path, data=body) as r:
                            assert r.status < 500, (path, body[:80], await r.text())
                async with s.get(f"{url}/api/events") as r:
                    assert r.status == 401  # every site's rides: the operator's token
                async with s.get(f"{url}/api/events", headers={
                        "Authorization": f"Bearer {backend.operator_token}"}) as r:
                    assert r.status == 200
        finally:
            await backend.stop()
    run(main())


def _raw_request(rng: random.Random, token: str) -> bytes:
    """A request as a hostile client might write it: odd header names and values (bytes
    that are not UTF-8, huge lines), credentials of any shape, a sign-in form of any bytes,
    JSON nested deeper than any parser's stack."""
    def junk(n: int) -> bytes:
        return bytes(rng.choice(b"abcXYZ019 -_=;,/\"'\\%\x80\xff\xfe\xc3\x00\x7f")
                     for _ in range(rng.randrange(n)))

    method, path = rng.choice([(b"GET", b"/api/devices"), (b"POST", b"/login"),
                               (b"POST", b"/api/devices"), (b"GET", b"/"),
                               (b"GET", b"/gbfs/3.0/gbfs.json"), (b"POST", b"/api/ota"),
                               (b"GET", b"/fleet"), (b"GET", b"/login?next=" + junk(40))])
    headers = [b"Host: x"]
    for _ in range(rng.randrange(6)):
        headers.append(rng.choice([b"Authorization: Bearer " + junk(60),
                                   b"Authorization: Bearer " + token.encode(),
                                   b"Cookie: huimin_session=" + junk(50),
                                   b"Content-Type: " + rng.choice([
                                       b"application/json",
                                       b"application/x-www-form-urlencoded",
                                       b"multipart/form-data; boundary=" + junk(10),
                                       junk(30)]),
                                   b"Origin: " + junk(30), b"X-Forwarded-Proto: " + junk(10),
                                   junk(20) + b": " + junk(200),
                                   b"X-Long: " + b"a" * rng.choice([10, 9000])]))
    body = rng.choice([b"token=" + junk(80), b"[" * 5000 + b"]" * 5000,
                       b'{"id":' * 3000 + b"1" + b"}" * 3000, junk(300), b""])
    headers.append(b"Content-Length: %d" % len(body))
    return method + b" " + path + b" HTTP/1.1\r\n" + b"\r\n".join(
        h.replace(b"\r", b"").replace(b"\n", b"") for h in headers) + b"\r\n\r\n" + body


def test_edge_headers_forms_and_deep_json_of_any_bytes(tmp_path: Path) -> None:
    """Whatever a client writes, the edge answers below 500 (or hangs up) and keeps
    serving."""
    import asyncio

    async def main() -> None:
        async with edge(tmp_path) as (_svc, base, token):
            host, port = base.removeprefix("http://").split(":")
            rng = random.Random(5)
            for _ in range(N):
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(_raw_request(rng, token))
                await writer.drain()
                line = await reader.readline()
                writer.close()
                if line:  # an empty line: the server hung up on it, which is fine
                    status = int(line.split()[1])
                    assert status < 500, line
            async with aiohttp.ClientSession() as s, s.get(base + "/healthz") as r:
                assert r.status == 200
    run(main())
