"""Only the edge can command a dock (docs/security.md): the dock firmware under
MicroPython, on a serial line and on MQTT (TLS, the shipped broker setup),
takes a command sealed with its own key and a rising counter, and refuses a
forged, a replayed and a reordered one; the slot stays locked, the refusal is
counted and logged, and genuine commands go on working."""

from __future__ import annotations

import asyncio
from pathlib import Path

import paho.mqtt.client as paho
from wire import auth, message

from edge.adapters.transports.serial import SerialTransport
from edge.runtime import Edge
from hardware.sim.devices import SimDock
from hardware.sim.town import Town
from tests.conftest import needs_mosquitto, run, until

pytestmark = needs_mosquitto


def _seal(key_hex: str, ctr: int, slot: int, cid: int) -> bytes:
    msg = {"t": "cmd", "id": cid, "op": "unlock", "slot": slot, "ctr": ctr}
    return bytes(auth.seal(auth.Key(bytes.fromhex(key_hex)), auth.DOWN, message.encode(msg)))


class Injector:
    """Puts raw bytes on a dock's downlink, bypassing the edge's sealing: on
    MQTT with the edge's own broker account (as a stolen edge password or a
    compromised broker could), on serial through the edge's end of the cable."""

    def __init__(self, town: Town, d: SimDock, password: str = "") -> None:
        self.town, self.d = town, d
        self.client: paho.Client | None = None
        if d.link == "mqtt":
            assert town.broker is not None
            # An edge account of its own: a client's id is its username, so with the
            # edge's own account it would take the edge's session over.
            c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="intruder")
            c.username_pw_set("intruder", password)
            c.connect("127.0.0.1", town.broker.port)
            c.loop_start()
            self.client = c

    def send(self, data: bytes) -> None:
        if self.client is not None:
            self.client.publish(f"huimin/anji/{self.d.dev}/down", data,
                                qos=1).wait_for_publish(5)
            return
        assert self.town.edge is not None
        t = next(t for t in self.town.edge.transports
                 if isinstance(t, SerialTransport) and self.d.dev in t.cfg.devices)
        assert t.link is not None
        t.link.send(data)
        t._wake.set()

    def close(self) -> None:
        if self.client is not None:
            self.client.loop_stop()
            self.client.disconnect()


async def open_injector(town: Town, d: SimDock) -> Injector:
    """An injector for `d`; on MQTT it gets an edge account of its own (a client's id is
    its username, so with the edge's own account it would take the edge's session over)."""
    password = ""
    if d.link == "mqtt":
        assert town.broker is not None
        password = town.broker.account("intruder", "edge")
        await town.broker.reload()
    return Injector(town, d, password)


def one_dock(tmp_path: Path, seed: int, mqtt_share: float = 0) -> Town:
    """A town of one full 4-slot dock and no backend: commands and their refusals only."""
    return Town(tmp_path, docks=1, slots=4, mqtt_share=mqtt_share, seed=seed, fill=1.0,
                backend=False)


async def online(town: Town) -> tuple[Edge, SimDock]:
    """one_dock's edge and its dock, once the dock is online."""
    await town.wait_online()
    assert town.edge is not None
    return town.edge, town.docks[0]


def _refusals(d: SimDock) -> int:
    return d.log_path.read_text().count("guard: refused cmd")


def test_forged_replayed_and_reordered_unlocks_are_refused_on_both_links(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=6, mqtt_share=0.5, seed=21, fill=1.0,
                        backend=False) as town:
            await town.wait_online()
            edge = town.edge
            assert edge is not None
            assert {d.link for d in town.docks} == {"serial", "mqtt"}
            for d in town.docks:
                inj = await open_injector(town, d)
                key = d.secrets["command_key"]
                try:
                    # Forged: no MAC, then a MAC under another key.
                    inj.send(message.encode({"t": "cmd", "id": 1, "op": "unlock", "slot": 0,
                                             "ctr": 10 ** 13}))
                    inj.send(_seal("77" * 32, 10 ** 13, 0, 2))
                    await until(lambda d=d: _refusals(d) == 2, 10, f"{d.dev} forged")
                    await asyncio.sleep(0.3)
                    assert d.emulator.takeable() == [], f"{d.dev} obeyed a forged unlock"

                    # Genuine, then the very same bytes again (replayed).
                    c1 = edge.keys._take()
                    c2, c3 = edge.keys._take(), edge.keys._take()
                    genuine = _seal(key, c1, 1, 3)
                    inj.send(genuine)
                    await until(lambda d=d: d.emulator.takeable() == [1], 10, f"{d.dev} genuine")
                    inj.send(genuine)
                    await until(lambda d=d: _refusals(d) == 3, 10, f"{d.dev} replay")

                    # Reordered: the later command first; the earlier is refused.
                    inj.send(_seal(key, c3, 2, 5))
                    await until(lambda d=d: 2 in d.emulator.takeable(), 10, f"{d.dev} c3")
                    inj.send(_seal(key, c2, 3, 4))
                    await until(lambda d=d: _refusals(d) == 4, 10, f"{d.dev} reorder")
                    await asyncio.sleep(0.3)
                    assert 3 not in d.emulator.takeable(), f"{d.dev} obeyed a reordered unlock"
                finally:
                    inj.close()
                log = d.log_path.read_text()
                assert "bad mac" in log and "stale: replayed or reordered" in log
                assert key not in log  # no secret in the console
                # The edge's own commands still work after all that.
                res = await edge.command(d.dev, "unlock", slot=4)
                assert res.ok, res
                await until(lambda d=d: 4 in d.emulator.takeable(), 10)
                assert d.restarts == 0
    run(main())


def test_a_command_sent_while_the_dock_rebooted_is_renumbered_and_obeyed(
        tmp_path: Path) -> None:
    """After a reboot a dock counts its reserved window as used: a command the
    edge numbered before hearing the new hello is answered stale_ctr with the
    floor, and the edge sends it once more above it."""
    async def main() -> None:
        async with one_dock(tmp_path, seed=3) as town:
            edge, d = await online(town)
            res = await edge.command(d.dev, "set_slot", slot=3, enabled=True)
            assert res.ok
            assert edge.metrics.get("commands.renumbered") == 0
            d_reg = edge.registry.devices[d.dev]
            assert d.proc is not None
            d.proc.kill()  # a power cut
            await until(lambda: d_reg.boot == 2, 15, "hello after the reboot")
            floor = int((d.flash / "cmd_ctr").read_text())
            assert edge.keys._floors[d.dev] >= floor  # the hello told the edge
            # As if numbered before that hello arrived:
            edge.keys._floors[d.dev] = floor - 10
            edge.keys._next = min(edge.keys._next, floor - 10)
            res = await edge.command(d.dev, "unlock", slot=1)
            assert res.ok, res
            assert edge.metrics.get("commands.renumbered") == 1
            await until(lambda: 1 in d.emulator.takeable(), 10)
    run(main())


def test_an_oversize_message_is_skipped_and_acked_not_redelivered(tmp_path: Path) -> None:
    """A 3,000-byte publish on a dock's down topic (only a compromised edge
    account or broker could send one): the dock's MQTT client reads past it
    without allocating it, acks it (so it is not redelivered on every
    reconnect), stays connected and goes on obeying the edge."""
    async def main() -> None:
        async with one_dock(tmp_path, seed=2, mqtt_share=1.0) as town:
            edge, d = await online(town)
            inj = await open_injector(town, d)
            try:
                inj.send(b"{" + b" " * 2998 + b"}")
                await until(lambda: "byte message (cap 1536)" in d.log_path.read_text(), 10)
            finally:
                inj.close()
            res = await edge.command(d.dev, "unlock", slot=0)
            assert res.ok, res
            await until(lambda: 0 in d.emulator.takeable(), 10)
            log = d.log_path.read_text()
            assert "mqtt down" not in log and "MemoryError" not in log
            assert log.count("byte message (cap 1536)") == 1
            assert d.restarts == 0
    run(main())


def test_a_replayed_time_does_not_set_a_docks_clock_back(tmp_path: Path) -> None:
    """A sealed `time` the edge sent an hour ago, played to the dock again: the dock
    refuses to step its clock back, and a rental made now is stamped now."""
    import time

    async def main() -> None:
        async with one_dock(tmp_path, seed=9) as town:
            edge, d = await online(town)
            recorded = edge.keys.seal(d.dev, {"t": "time", "now": int(time.time()) - 3600})
            inj = await open_injector(town, d)
            try:
                await asyncio.sleep(1.0)  # the edge's own time after the hello has landed
                inj.send(recorded)
                await until(lambda: "refused (replayed?)" in d.log_path.read_text(), 10,
                            "the dock refusing the old time")
            finally:
                inj.close()
            res = await edge.command(d.dev, "unlock", slot=1)
            assert res.ok, res
            await until(lambda: 1 in d.emulator.takeable(), 10)
            d.emulator.take_bike(1)
            await until(lambda: edge.metrics.get("events.stored") >= 1, 15, "the rented event")
            rows = [r for r in await edge.store.events() if r["kind"] == "rented"]
            assert rows and rows[0]["happened"] is not None
            # Stamped when it happened by the edge's clock, not an hour before it arrived.
            assert rows[0]["received"] - rows[0]["happened"] < 600, rows[0]
            assert edge.metrics.get("events.at_corrected") == 0  # the dock's own stamp held
    run(main())
