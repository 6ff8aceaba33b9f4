"""The MQTT uplink against a second real Mosquitto standing for the city's
broker: events arrive once per idempotency key across a city-broker restart,
station status and GBFS station_status are retained per site, and a rental
published for the site unlocks the dock firmware and comes back as a result."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from cloud_bridge import signing
from hardware.sim.town import Town
from tests.conftest import needs_mosquitto, run, until

pytestmark = needs_mosquitto


class CitySubscriber:
    """A city-side consumer with a persistent session (paho's own thread)."""

    def __init__(self, port: int, password: str) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.retained: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="city-consumer",
                        clean_session=False)
        c.username_pw_set("city-backend", password)
        c.on_connect = lambda cl, *_: cl.subscribe("huimin-city/#", qos=1)
        c.on_message = self._on
        c.reconnect_delay_set(0.1, 1)
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.c = c

    def _on(self, cl: Any, ud: Any, m: Any) -> None:
        doc = json.loads(m.payload)
        with self._lock:
            self.got.append((m.topic, doc))
            if m.retain or "/status/" in m.topic or "/gbfs/" in m.topic:
                self.retained[m.topic] = doc

    def event_keys(self) -> list[str]:
        with self._lock:
            return [d["key"] for t, d in self.got if t.endswith("/events")]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def test_city_broker_gets_events_status_gbfs_and_sends_rentals(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=6, mqtt_share=0, seed=12, fill=0.5,
                        backend=False, city_broker=True) as town:
            await town.wait_online()
            assert town.city_broker is not None and town.edge is not None
            sub = CitySubscriber(town.city_broker.port, town.city_backend_password)
            try:
                d = town.docks[0]
                bike = await town.rent(d)
                assert bike is not None
                await until(lambda: len(sub.event_keys()) == 1)
                # The city broker goes away (persistence on) and comes back.
                await town.city_broker.stop()
                town.give_back(d, bike)
                await until(lambda: town.edge.metrics.get("events.stored") == 2)  # type: ignore[union-attr]
                await asyncio.sleep(0.5)
                await town.city_broker.start()
                await until(lambda: len(set(sub.event_keys())) == 2, 30)
                keys = sub.event_keys()
                assert len(set(keys)) == 2  # QoS 1 may repeat; the key makes it once
                st = town.edge.stations.statuses()[0]
                topic = f"huimin-city/anji/status/{st.station_id}"
                await until(lambda: sub.retained.get(topic, {}).get("body", {})
                            .get("bikes_available") == d.emulator.locked_bikes(), 20)
                gbfs_topic = "huimin-city/anji/gbfs/3.0/station_status"
                await until(lambda: gbfs_topic in sub.retained, 20)
                doc = sub.retained[gbfs_topic]
                assert doc["version"] == "3.0" and doc["data"]["stations"][0]["station_id"] == \
                    st.station_id
                # A rental published for this site: refused unsigned, stale or
                # signed with another key; taken once when the backend signed it.
                locked = [i for i, s in enumerate(d.emulator.slots) if s.present and s.latched]
                body = json.dumps({"rental_id": "mq-1", "station": d.station, "slot": locked[0]})
                m = town.edge.metrics

                def send(env: dict[str, Any]) -> None:
                    sub.c.publish("huimin-city/anji/rentals/new", json.dumps(env),
                                  qos=1).wait_for_publish(5)

                send(json.loads(body))  # the old unsigned form
                await until(lambda: m.get("rentals.rejected", "malformed") == 1)
                for secret, ts in (("another-sites-key-0123", None), (town.secret, 1_000_000)):
                    h = signing.sign(secret, body.encode(), ts)
                    send({"body": body, "ts": int(h["X-Huimin-Timestamp"]),
                          "sig": h["X-Huimin-Signature"]})
                await until(lambda: m.get("rentals.rejected", "signature") == 2)
                assert not d.emulator.takeable()
                h = signing.sign(town.secret, body.encode())
                signed = {"body": body, "ts": int(h["X-Huimin-Timestamp"]),
                          "sig": h["X-Huimin-Signature"]}
                send(signed)
                await until(lambda: d.emulator.takeable(), 10)
                d.emulator.take_bike(locked[0])

                def result() -> dict[str, Any] | None:
                    for t, doc in list(sub.got):
                        if t.endswith("/rentals/results") and doc["body"]["rental_id"] == "mq-1":
                            return doc["body"]  # type: ignore[no-any-return]
                    return None
                res = await until(result, 20)
                assert res["ok"] and res["slot"] == locked[0]
                send(signed)  # replayed: its rental_id is taken, no second unlock
                await until(lambda: m.get("rentals.duplicate") == 1)
                assert not d.emulator.takeable()
            finally:
                sub.close()
    run(main())
