"""The city tier: N sites feeding one backend through a 3-node NATS
JetStream cluster (hardware/sim/city.py). A node lost mid-run (the events
stream's leader, the hard case) and a site's uplink cut lose and duplicate
nothing at the backend; rentals flow down to the right site; a site's
account cannot speak for another; the city's GBFS manifest lists every site."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import nats
import nats.errors
import nats.js.errors
import pytest
from jsonschema import FormatChecker

from cloud_bridge.nats_uplink import NatsUplink
from hardware.sim.audit import audit_city, settle_and_audit_city
from hardware.sim.city import City
from hardware.sim.city_backend import events_stream
from hardware.sim.city_tier import nats_server_path
from tests.conftest import needs_mosquitto, run, schema_dir, until

pytestmark = [pytest.mark.faults, needs_mosquitto,
              pytest.mark.skipif(nats_server_path() is None,
                                 reason="nats-server not installed (./scripts/bootstrap.sh)")]


async def _stream_leader(city: City) -> str:
    assert city.link is not None and city.link.nc is not None
    info = await city.link.nc.jetstream().stream_info(events_stream("anji"))
    assert info.cluster is not None and info.cluster.leader
    return info.cluster.leader


async def _rentals(city: City) -> dict[str, int]:
    assert city.backend is not None
    rows = city.backend.db.execute(
        "SELECT site, count(*) FROM rentals WHERE state = 'rented' GROUP BY site").fetchall()
    return {str(s): int(n) for s, n in rows}


def test_a_lost_node_and_a_cut_uplink_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with City(tmp_path, sites=2, docks=2, slots=6, seed=7, fill=0.5,
                        heartbeat_s=2) as city:
            await city.wait_online(40)
            assert city.tier is not None
            riders = asyncio.create_task(city.riders(period=0.4))
            await asyncio.sleep(3.0)
            leader = await _stream_leader(city)
            node = next(n for n in city.tier.nodes if n.name == leader)
            await city.tier.kill(node)  # anji's events stream's leader: the hard case
            await asyncio.sleep(6.0)
            city.cut("anji")  # and anji's uplink down, riders riding on
            await asyncio.sleep(12.0)
            cut_off = audit_city(city)
            city.cut("anji", False)
            await city.tier.restart(node)
            await asyncio.sleep(4.0)
            riders.cancel()
            a = await settle_and_audit_city(city, limit_s=90)
            print(a.table())
            print("while anji was cut off: in its outbox or on its docks:",
                  len(cut_off.in_flight), "; city link:", city.link and city.link.stats)
            assert len(a.accepted) >= 10, a.table()  # the riders did ride, in both sites
            assert not a.lost and not a.duplicated and not a.in_flight, a.table()
            assert {site.split("/")[0] for site, _ in a.accepted} == {"anji", "deqing"}
            # Rentals issued at the backend reached each site's docks.
            rented = await _rentals(city)
            assert rented.get("anji", 0) >= 1 and rented.get("deqing", 0) >= 1, rented
            # Dozens of batches later, each edge's client holds the same few subscriptions
            # (its rentals, JetStream's answers, requests): none left behind per batch.
            for town in city.towns:
                assert town.edge is not None
                up = next(u for u in town.edge.bridge.uplinks if isinstance(u, NatsUplink))
                assert up.nc is not None
                assert len(up.nc._subs) <= 3, up.nc._subs
            # The audit can fail: an event the backend lost counts as lost.
            assert city.backend is not None
            city.backend.db.execute("DELETE FROM events WHERE rowid IN "
                                    "(SELECT rowid FROM events LIMIT 1)")
            assert len(audit_city(city).lost) == 1
    run(main())


def test_a_site_may_speak_only_for_itself_and_the_manifest_lists_every_site(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with City(tmp_path, sites=2, docks=1, slots=4, seed=3) as city:
            await city.wait_online(40)
            assert city.tier is not None and city.backend is not None
            ctx = ssl.create_default_context(cafile=str(city.tier.ca))
            nc = await nats.connect(city.tier.urls, user="site-deqing",
                                    password=city.tier.passwords["site-deqing"], tls=ctx,
                                    inbox_prefix="_INBOX_deqing", allow_reconnect=False)
            errors: list[Exception] = []

            async def on_error(exc: Exception) -> None:
                errors.append(exc)
            nc._error_cb = on_error
            js = nc.jetstream(timeout=2)
            forged = {"key": "ev:dock-001:feedface:1", "kind": "event",
                      "body": {"type": "rented", "device": "dock-001", "seq": 1}}
            # deqing's account writing as anji, or issuing a rental: refused.
            for subject in ("city.anji.events", "city.deqing.rentals"):
                with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                    await js.publish(subject, json.dumps(forged).encode())
            await until(lambda: len(errors) >= 2, 10, "the server's permission errors")
            assert all("ermissions" in str(e) for e in errors), errors
            await nc.close()
            # A wrong password does not connect at all.
            with pytest.raises((nats.errors.Error, OSError)):
                await nats.connect(city.tier.urls, user="site-deqing", password="guess",
                                   tls=ctx, allow_reconnect=False, max_reconnect_attempts=0,
                                   connect_timeout=2)
            await asyncio.sleep(1.0)
            assert not [e for e in city.backend.events() if e["key"] == forged["key"]]
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{city.backend_url}/") as r:  # the city at a glance
                    page = await r.text()
                for site in ("anji", "deqing"):
                    assert f"<tr><td>{site}</td>" in page and f"{site}/{site}-001" in page
                assert "<h2>Counters</h2>" in page and "{'" not in page  # a table, not a dict
                async with s.get(f"{city.backend_url}/gbfs/manifest.json") as r:
                    manifest: dict[str, Any] = await r.json()
                systems = {d["system_id"]: d for d in manifest["data"]["datasets"]}
                assert set(systems) == {"anji-public-bikes", "deqing-public-bikes"}
                for d in systems.values():  # each a live GBFS system at its site's edge
                    url = next(v["url"] for v in d["versions"] if v["version"] == "3.0")
                    async with s.get(url) as r:
                        assert r.status == 200 and (await r.json())["version"] == "3.0"
            assert manifest["version"] == "3.0"
            schemas = schema_dir()
            if schemas is not None:  # ../shared's official schema, where the clone has it
                schema = json.loads((schemas / "v3.0" / "manifest.json").read_text())
                jsonschema.validate(manifest, schema, format_checker=FormatChecker())
            else:
                print("GBFS schemas not found (../shared/gbfs-json-schema): manifest.json "
                      "checked by hand only")
    run(main())


def test_a_hostile_site_costs_no_other_site_an_event(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """deqing's own credentials, used as an attacker would on the real 3-node cluster:
    anji's next event ids forged as its dedupe ids, payloads over the caps, its own event
    budget filled to refusal, junk status subjects past its budget, and an event body
    naming anji's station. anji's riders ride on: every event anji's docks accepted
    reaches the backend once, its statuses stay, and nothing deqing sent speaks for anji."""
    from hardware.sim import city_backend

    # Small budgets, so that filling one takes seconds (the real ones: city_backend.py).
    monkeypatch.setattr(city_backend, "SITE_EVENTS_BYTES", 1 << 20)
    monkeypatch.setattr(city_backend, "SITE_STATE_SUBJECTS", 50)

    async def main() -> None:
        async with City(tmp_path, sites=2, docks=1, slots=6, seed=11, fill=0.5) as city:
            await city.wait_online(40)
            assert city.tier is not None and city.backend is not None
            anji = city.towns[0]
            assert anji.spec.site == "anji" and anji.edge is not None
            dock = anji.docks[0].dev
            epoch = anji.edge.registry.devices[dock].epoch
            ctx = ssl.create_default_context(cafile=str(city.tier.ca))
            nc = await nats.connect(city.tier.urls, user="site-deqing",
                                    password=city.tier.passwords["site-deqing"], tls=ctx,
                                    inbox_prefix="_INBOX_deqing", allow_reconnect=False)
            js = nc.jetstream(timeout=5)
            refused = 0
            # 1. anji's next 200 event keys, taken first as deqing's dedupe ids.
            for seq in range(1, 200):
                key = f"ev:{dock}:{epoch}:{seq}"
                for msg_id in (f"anji/{key}", key):
                    with contextlib.suppress(nats.js.errors.Error, nats.errors.Error):
                        await js.publish("city.deqing.events", json.dumps(
                            {"key": key, "kind": "event", "body": {
                                "type": "returned", "site": "anji", "station": "anji-001",
                                "device": dock, "slot": 0, "bike": "0B00000001"}}).encode(),
                            headers={"Nats-Msg-Id": msg_id})
            # 2. Over the caps: the server's 1 MiB, the stream's 64 KiB a message.
            for size in (2 << 20, 100 << 10):
                try:
                    await js.publish("city.deqing.events", b"x" * size)
                except (nats.errors.Error, nats.js.errors.Error):
                    refused += 1
            # 3. Its own event budget filled until the stream refuses.
            for i in range(100):
                try:
                    await js.publish("city.deqing.events", b"j" * (60 << 10),
                                     headers={"Nats-Msg-Id": f"deqing/junk{i}"})
                except (nats.errors.Error, nats.js.errors.Error):
                    refused += 1
                    break
            # 4. Junk status subjects past its subject budget.
            for i in range(120):
                with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
                    await js.publish(f"city.deqing.status.junk{i}", b"{}")
            await nc.close()
            assert refused >= 3, refused  # both caps and the full budget said no
            # anji's riders ride on, through all of it.
            riders = asyncio.create_task(anji.riders(period=0.4))
            await asyncio.sleep(12.0)
            riders.cancel()
            a = await settle_and_audit_city(city, limit_s=90)
            print(a.table(), "city link:", city.link and city.link.stats)
            anji_events = [k for site, k in a.accepted if site.startswith("anji")]
            assert len(anji_events) >= 3, a.table()
            assert not a.lost and not a.duplicated and not a.in_flight, a.table()
            # Nothing deqing sent was stored for anji: the backend holds exactly the events
            # anji's own edge stored, nor any event of deqing's naming anji's station.
            stored = {f"ev:{r['device']}:{r['epoch']}:{r['seq']}"
                      for r in await anji.edge.store.events()}
            assert {e["key"] for e in city.backend.events("anji")} == stored
            assert not [e for e in city.backend.events("deqing") if e.get("station") ==
                        "anji-001"]
            assert city.link is not None and city.link.stats["foreign"] >= 1
            stations = city.backend.stations()
            assert "anji/anji-001" in stations, stations.keys()
    run(main())


def test_events_the_consumer_never_hands_over_are_read_from_the_stream(tmp_path: Path) -> None:
    """A node's crash can leave the backend's consumer past messages it never
    handed over (what CI once saw: every event of a site after its stream
    leader was killed, acked to the site, never delivered). Here the consumer is
    put past them on purpose: the backend notices the stream holds what it has
    not handled, reads it by sequence, and the audit finds nothing lost."""
    from functools import partial

    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    async def main() -> None:
        async with City(tmp_path, sites=1, docks=1, slots=6, seed=5, fill=0.5,
                        heartbeat_s=2) as city:
            await city.wait_online(40)
            link = city.link
            assert link is not None and link.nc is not None
            intake = next(t for t in link._tasks if t.get_name() == "city-link:events:anji")
            intake.cancel()
            await asyncio.gather(intake, return_exceptions=True)
            # Riders bring bikes back to the dock's free slots: "returned" events.
            dock = city.towns[0].docks[0]
            free = [i for i, sl in enumerate(dock.emulator.slots) if not sl.present]
            for n, slot in enumerate(free[:3]):
                dock.emulator.insert_bike(slot, f"0B0000A{n}")
                await asyncio.sleep(0.3)
            stream = events_stream("anji")
            js = link.nc.jetstream(timeout=5)

            async def in_stream() -> int:
                return int((await js.stream_info(stream)).state.last_seq)
            async with asyncio.timeout(30):
                while await in_stream() < len(free[:3]):
                    await asyncio.sleep(0.2)
            held = await in_stream()
            assert len(free) >= 2 and not link.stats["events_acked"]  # none taken in yet
            # The consumer, as a crash may leave it: past everything the stream holds.
            await js.delete_consumer(stream, "backend")
            await js.add_consumer(stream, ConsumerConfig(
                durable_name="backend", ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0,
                deliver_policy=DeliverPolicy.NEW))
            link._tasks.append(asyncio.create_task(link._forever(
                "events:anji", partial(link._take_events, "anji"), js)))
            a = await settle_and_audit_city(city, limit_s=30)  # the backend reading them
            print(a.table())
            assert not a.lost and not a.duplicated and not a.in_flight, a.table()
            assert link.stats["recovered"] >= len(free[:3]), link.stats
            assert link.handled[stream].floor >= held
    run(main())
