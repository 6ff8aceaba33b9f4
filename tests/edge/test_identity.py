"""Identity comes from the authenticated link (docs/security.md): a dock on a
serial line cannot be spoken for over MQTT, not even with its own broker
account and key, except by its birth (hello) on the new link, which moves its
route; and nobody can publish for a device without its key."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import paho.mqtt.client as paho
from wire import auth, message

from hardware.sim.town import Town
from tests.conftest import needs_mosquitto, run, until

pytestmark = needs_mosquitto


def test_a_serial_docks_route_moves_only_with_its_hello(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=8,
                        backend=False, use_mqtt=True) as town:
            await town.wait_online()
            edge, broker = town.edge, town.broker
            assert edge is not None and broker is not None
            d = town.docks[0]
            dev = edge.registry.devices[d.dev]
            assert dev.transport.startswith("serial:")
            # The dock's identity on MQTT too (as if it were moving to 4G).
            pw = broker.account(d.dev)
            await broker.reload()
            key = auth.Key(bytes.fromhex(d.secrets["command_key"]))
            connected = threading.Event()
            c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=d.dev + "-4g")
            c.username_pw_set(d.dev, pw)
            c.on_connect = lambda *a: connected.set()
            c.connect("127.0.0.1", broker.port)
            c.loop_start()
            try:
                assert await asyncio.to_thread(connected.wait, 10)

                def publish(leaf: str, msg: dict[str, object]) -> None:
                    data = bytes(auth.seal(key, auth.UP, message.encode(msg)))
                    c.publish(f"huimin/anji/{d.dev}/{leaf}", data, qos=1).wait_for_publish(5)

                m = edge.metrics
                publish("status", {"t": "status", "dev": d.dev, "online": False, "boot": 99})
                publish("state", {"t": "state", "dev": d.dev, "boot": 10 ** 9, "n": 1,
                                  "slots": "DDDD"})
                await until(lambda: m.get("rx.rejected", "wrong_transport") == 2)
                assert dev.online and dev.transport.startswith("serial:")
                st = edge.stations.statuses()[0]
                assert st.online and st.is_renting and st.bikes_disabled == 0
                assert st.bikes_available == d.emulator.locked_bikes()
                # Its birth on the new link moves the route there.
                publish("hello", {"t": "hello", "dev": d.dev, "kind": "dock", "fw": "0.1.0",
                                  "slots": 4, "boot": dev.boot + 1, "epoch": dev.epoch})
                await until(lambda: dev.transport == "mqtt")
            finally:
                c.loop_stop()
                c.disconnect()
    run(main())
