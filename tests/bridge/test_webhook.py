"""The cloud bridge against the development backend: station status and every
rent/return reach the backend once, through backend outages (503 with
Retry-After), and a rental issued at the backend unlocks a slot in the dock
firmware under MicroPython and comes back `rented`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud_bridge.backend_format import BackendFormat
from hardware.sim.town import Town
from tests.conftest import run, until


async def _ride(town: Town, rounds: int) -> int:
    """Rent at one dock, return at another; returns the number of events made."""
    assert town.edge is not None
    made = 0
    for i in range(rounds):
        d, back = town.docks[i % len(town.docks)], town.docks[(i + 1) % len(town.docks)]
        before = town.edge.metrics.get("events.stored")
        bike = await town.rent(d)
        assert bike is not None
        await until(lambda b=before: town.edge.metrics.get("events.stored") > b)
        assert town.give_back(back, bike) is not None
        await until(lambda b=before: town.edge.metrics.get("events.stored") > b + 1)
        made += 2
    return made


def _backend_matches_edge_stations(town: Town) -> bool:
    assert town.backend is not None and town.edge is not None
    got = town.backend.stations()
    return all(got.get(f"anji/{s.station_id}", {}).get("bikes_available") == s.bikes_available
               and got[f"anji/{s.station_id}"]["docks_available"] == s.docks_available
               for s in town.edge.stations.statuses())


def test_events_reach_backend_exactly_once_through_an_outage(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=6, mqtt_share=0, seed=21, fill=0.5) as town:
            await town.wait_online()
            assert town.backend is not None and town.edge is not None
            # The backend is down for a while and says when to come back.
            town.backend.fail_next, town.backend.fail_status = 6, 503
            town.backend.retry_after = 0.2
            made = await _ride(town, 3)
            await until(lambda: len(town.backend.events()) == made, 30)  # type: ignore[union-attr]
            evs = town.backend.events()
            edge_rows = await town.edge.store.events()
            assert len({e["key"] for e in evs}) == len(evs) == len(edge_rows) == made
            assert {(e["device"], e["seq"]) for e in evs} == {
                (r["device"], r["seq"]) for r in edge_rows}
            assert town.backend.stats["injected_failures"] == 6
            assert town.edge.metrics.get("uplink.city.failed") >= 1
            await until(lambda: _backend_matches_edge_stations(town), 20)
            await until(lambda: town.edge.bridge.backlog.get("city", (1, 0))[0] == 0, 10)  # type: ignore[union-attr]
    run(main())


async def _rental(town: Town, body: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s:
        assert town.backend is not None  # the city's operator issues it
        async with s.post(f"{town.backend_url}/api/rentals", json=body, headers={
                "Authorization": f"Bearer {town.backend.operator_token}"}) as r:
            assert r.status == 201, await r.text()
            created: dict[str, Any] = await r.json()
        rid = created["rental_id"]

        async def settled() -> dict[str, Any] | None:
            async with s.get(f"{town.backend_url}/api/rentals/{rid}") as r:
                got: dict[str, Any] = await r.json()
                return got if got["state"] != "issued" else None
        for _ in range(200):
            d = next((d for d in town.docks if d.station == body["station"]), None)
            if d is not None and d.emulator.takeable():
                d.emulator.take_bike(d.emulator.takeable()[0])  # the rider takes the bike
            got = await settled()
            if got is not None:
                return got
            import asyncio
            await asyncio.sleep(0.05)
    raise AssertionError("rental never settled")


def test_backend_rental_unlocks_the_dock_and_reports_rented(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=4, fill=0.5) as town:
            await town.wait_online()
            assert town.backend is not None and town.edge is not None
            d = town.docks[0]
            locked = [i for i, s in enumerate(d.emulator.slots) if s.present and s.latched]
            bike = d.emulator.slots[locked[0]].bike
            got = await _rental(town, {"site": "anji", "station": d.station, "slot": locked[0],
                                       "rider": "r-1"})
            assert got["state"] == "rented", got
            assert got["result"]["slot"] == locked[0] and got["result"]["bike"] == bike
            await until(lambda: any(e.get("rental_id") == got["rental_id"]
                                    for e in town.backend.events()))  # type: ignore[union-attr]
            # Refusals come back as clear results, not silence.
            empty = next(i for i, s in enumerate(d.emulator.slots) if not s.present)
            got = await _rental(town, {"site": "anji", "station": d.station, "slot": empty})
            assert got["state"] == "failed" and got["result"]["err"] == "no_bike"
            got = await _rental(town, {"site": "anji", "station": "nowhere-9"})
            assert got["state"] == "failed" and got["result"]["err"] == "unknown_station"
            # The same rental id twice: handled once at the edge, the stored answer again.
            first = await town.edge.rentals.rent({"rental_id": got["rental_id"],
                                                  "station": d.station})
            assert json.loads(BackendFormat("anji").rental(first)) == got["result"]
            assert town.edge.metrics.get("rentals.duplicate") == 1
            # A jammed lock is reported as such, and the bike stays docked.
            locked = [i for i, s in enumerate(d.emulator.slots) if s.present and s.latched]
            d.emulator.jam(locked[0])
            got = await _rental(town, {"site": "anji", "station": d.station, "slot": locked[0]})
            assert got["result"]["err"] == "lock_jammed", got
            assert d.emulator.slots[locked[0]].present
    run(main())


def test_wrong_signature_is_refused_and_nothing_is_lost(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=5, fill=1.0) as town:
            await town.wait_online()
            assert town.backend is not None and town.edge is not None
            keys = town.backend.secrets
            assert keys is not None  # one key per site, as a city runs it
            keys["anji"] = "someone-else-entirely"  # the city rotated the key
            d = town.docks[0]
            # No rental reaches the edge now (its poll is refused too): a technician
            # at the dock unlocks a slot and takes the bike out.
            bike = await town.technician_unlock(d, 0)
            assert bike is not None
            await until(lambda: town.backend.stats["bad_signature"] >= 2)  # type: ignore[union-attr]
            assert town.backend.events() == []
            n, _ = await town.edge.store.outbox_stats("city")
            assert n >= 1  # still queued, not dropped
            keys["anji"] = town.secret  # the key is fixed: the backlog drains
            await until(lambda: [e["bike"] for e in town.backend.events()] == [bike], 60)  # type: ignore[union-attr]
    run(main())


def test_reservation_holds_a_bike_then_a_rental_takes_it_or_it_expires(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=4, fill=0.75) as town:
            await town.wait_online()
            assert town.backend is not None and town.edge is not None
            d = town.docks[0]
            st = town.edge.stations.statuses
            # Online is the hello; the slots' state follows it: wait for that too.
            await until(lambda: st()[0].bikes_available == d.emulator.locked_bikes() > 0)
            avail = st()[0].bikes_available
            got = await _rental(town, {"site": "anji", "station": d.station, "hold_min": 10})
            assert got["state"] == "reserved", got
            held = got["result"]["slot"]
            # The held bike is not offered to anyone else.
            await until(lambda: st()[0].bikes_available == avail - 1)
            assert d.emulator.slots[held].present and d.emulator.slots[held].latched
            taken = await _rental(town, {"site": "anji", "station": d.station,
                                         "reservation_id": got["rental_id"]})
            assert taken["state"] == "rented" and taken["result"]["slot"] == held, taken
            # A second hold, never collected, expires and the bike is offered again.
            avail = d.emulator.locked_bikes()
            await until(lambda: st()[0].bikes_available == avail)
            got = await _rental(town, {"site": "anji", "station": d.station, "hold_min": 0.1})
            assert got["state"] == "reserved"
            await until(lambda: st()[0].bikes_available == avail - 1)

            async def expired() -> bool:
                async with aiohttp.ClientSession() as s, s.get(
                        f"{town.backend_url}/api/rentals/{got['rental_id']}") as r:
                    return (await r.json())["state"] == "expired"  # type: ignore[no-any-return]
            await until(expired, 20)
            await until(lambda: st()[0].bikes_available == avail)
    run(main())


def test_tls_error_and_timeout_are_clear_retryable_errors(tmp_path: Path) -> None:
    """HTTPS to a server that speaks plain HTTP, and a backend slower than the
    timeout: both raise UplinkError (retry later), nothing escapes or is lost."""
    import pytest

    from cloud_bridge.errors import UplinkError
    from cloud_bridge.webhook import WebhookUplink
    from edge.config import UplinkConfig
    from edge.core.records import OutboxRow
    from hardware.sim.backend import DevBackend

    async def main() -> None:
        backend = DevBackend(tmp_path / "b.db", "k" * 16)
        url = await backend.start()
        row = OutboxRow(1, 0, "event", "ev:d:e:1", '{"type": "rented"}', 0.0)
        try:
            up = WebhookUplink(UplinkConfig("t", "webhook", url.replace("http:", "https:")
                                            + "/webhook", "k" * 16, timeout_s=2), "s")
            with pytest.raises(UplinkError) as e:
                await up.deliver([row])
            assert not e.value.permanent
            await up.close()
            backend.delay_s = 3  # stores, then answers too late
            up = WebhookUplink(UplinkConfig("t", "webhook", url + "/webhook", "k" * 16,
                                            timeout_s=1), "s")
            with pytest.raises(UplinkError) as e:
                await up.deliver([row])
            assert "Timeout" in e.value.reason and not e.value.permanent
            backend.delay_s = 0
            await up.deliver([row])  # the resend: stored once, refused as a duplicate
            assert len(backend.events()) == 1 and backend.stats["duplicates"] == 1
            await up.close()
        finally:
            await backend.stop()
    run(main())


def test_backend_answers_signed_fund_lookups_by_token(tmp_path: Path) -> None:
    from cloud_bridge.signing import sign
    from hardware.sim.backend import DevBackend

    async def main() -> None:
        backend = DevBackend(tmp_path / "b.db", "k" * 16)
        url = await backend.start()
        try:
            async with aiohttp.ClientSession() as s:
                op = {"Authorization": f"Bearer {backend.operator_token}"}
                records = {"token": "t0k3n", "records": [
                    {"programme": "耕地地力保护补贴", "amount_fen": 12345, "paid": "2026-03-01",
                     "status": "已发放"}]}
                async with s.post(f"{url}/api/funds", json=records) as r:
                    assert r.status == 401  # not the city's operator
                async with s.post(f"{url}/api/funds", headers=op, json=records) as r:
                    assert r.status == 201
                path = "/edge/anji/funds/t0k3n"
                async with s.get(url + path, headers=sign("k" * 16, path.encode())) as r:
                    doc = await r.json()
                    assert r.status == 200 and doc["records"][0]["amount_fen"] == 12345
                async with s.get(url + path, headers=sign("wrong" * 4, path.encode())) as r:
                    assert r.status == 401
                path = "/edge/anji/funds/unknown"
                async with s.get(url + path, headers=sign("k" * 16, path.encode())) as r:
                    assert r.status == 404
        finally:
            await backend.stop()
    run(main())


def test_the_edge_acts_only_on_answers_signed_for_its_request(tmp_path: Path) -> None:
    """Fund records and rentals from the backend count only when signed with the
    site's key over the nonce the edge sent, recently: a changed answer, one
    recorded for another request, or an old one is refused."""
    import time

    from cloud_bridge import signing
    from cloud_bridge.errors import UplinkError
    from cloud_bridge.webhook import WebhookUplink
    from edge.config import UplinkConfig
    from hardware.sim.backend import DevBackend

    async def main() -> None:
        backend = DevBackend(tmp_path / "b.db", "k" * 16)
        url = await backend.start()
        up = WebhookUplink(UplinkConfig("city", "webhook", f"{url}/webhook", "k" * 16), "anji")
        try:
            tok = "ab" * 16
            async with aiohttp.ClientSession() as s, s.post(f"{url}/api/funds", headers={
                    "Authorization": f"Bearer {backend.operator_token}"}, json={
                    "token": tok, "records": [{"programme": "p", "amount_fen": 1,
                                               "paid": "2026-01-01", "status": "ok"}]}) as r:
                assert r.status == 201
            got = await up.fetch_funds(tok, 5.0)
            assert got is not None and got["records"][0]["amount_fen"] == 1
            assert await up.fetch_funds("cd" * 16, 5.0) is None  # a signed "unknown"
            assert await up.poll_rentals(0.1) == []
            backend.tamper_answers = True  # changed on the way, after signing
            with pytest.raises(UplinkError, match="signature mismatch"):
                await up.fetch_funds(tok, 5.0)
            backend.tamper_answers = False
            wrong = WebhookUplink(UplinkConfig("city", "webhook", f"{url}/webhook",
                                               "another-sites-key"), "anji")
            with pytest.raises(UplinkError, match="401"):
                await wrong.fetch_funds(tok, 5.0)
            await wrong.close()
        finally:
            await up.close()
            await backend.stop()
        # A recorded answer replayed to another request, or an old one.
        body = b'{"rentals": []}'
        h = signing.sign_answer("k" * 16, "nonce-1", body)
        assert signing.verify_answer("k" * 16, "nonce-1", body, h) is None
        assert signing.verify_answer("k" * 16, "nonce-2", body, h) == "signature mismatch"
        old = signing.sign_answer("k" * 16, "nonce-3", body, int(time.time()) - 3600)
        assert "skew" in (signing.verify_answer("k" * 16, "nonce-3", body, old) or "")
    run(main())


def test_each_site_has_its_own_key_at_the_backend(tmp_path: Path) -> None:
    """One site's key does not speak for another site, nor for a site the
    backend does not know."""
    import json as _json

    from cloud_bridge.signing import sign
    from hardware.sim.backend import DevBackend

    async def main() -> None:
        k1, k2 = "anji-key-0123456789", "dipu-key-0123456789"
        backend = DevBackend(tmp_path / "b.db", {"anji": k1, "dipu": k2})
        url = await backend.start()
        try:
            async with aiohttp.ClientSession() as s:
                def post(site: str, key: str) -> Any:
                    body = _json.dumps({"site": site, "items": []}).encode()
                    return s.post(f"{url}/webhook", data=body, headers=sign(key, body))
                async with post("anji", k1) as r:
                    assert r.status == 200
                async with post("anji", k2) as r:  # dipu's edge speaking for anji
                    assert r.status == 401
                async with post("nowhere", "") as r:
                    assert r.status == 401
                path = "/edge/dipu/funds/" + "ab" * 16
                async with s.get(url + path, headers=sign(k1, path.encode())) as r:
                    assert r.status == 401
                async with s.get(url + path, headers=sign(k2, path.encode())) as r:
                    assert r.status == 404
        finally:
            await backend.stop()
    run(main())
