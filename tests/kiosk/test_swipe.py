"""A villager swipes a card at a kiosk whose real firmware runs under
MicroPython: the screen shows the masked name and number and the payments, the
voice module says the total and the latest one; a stale cache is shown with its
date when the backend is away; bad cards get a clear screen and the kiosk keeps
working; and no clear ID number or name crosses any wire or lands in any log
or database."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from wire import idcard

from edge.core.stations import nearest
from hardware.idcard_emulator import Card, fictional_card
from hardware.sim.devices import SimKiosk
from hardware.sim.town import Town
from tests.conftest import needs_mosquitto, run, until

# The firmware's own wording (apps/kiosk/screens.py is MicroPython, also plain Python).
_spec = importlib.util.spec_from_file_location(
    "kiosk_screens", Path(__file__).resolve().parents[2] / "firmware/apps/kiosk/screens.py")
assert _spec is not None and _spec.loader is not None
screens = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(screens)

shown_screen: dict[int, str] = {}

RECORDS = [{"programme": "耕地地力保护补贴", "amount_fen": 12345, "paid": "2026-03-01",
            "status": "已发放"},
           {"programme": "城乡居民基础养老金", "amount_fen": 15300, "paid": "2026-06-15",
            "status": "已发放"}]


async def _idle_shows_nearby_bikes(town: Town, k: SimKiosk) -> None:
    """The idle screen's first station: the one nearest the kiosk (the sim puts it at
    the town centre), with its bikes, sent by the edge."""
    assert town.edge is not None and town.cfg is not None and k.screen is not None
    edge, names = town.edge, {s.id: s.name_zh for s in town.cfg.stations}
    hk = edge.housekeeping

    def shows_now() -> bool:
        # The dock's first report may land after the kiosk's first feed: compare
        # with the edge's count now, not with the count when the wait began.
        first = nearest(edge.stations.statuses(), hk.station_places, hk.kiosk_places[k.dev])[0]
        texts = k.screen.texts  # type: ignore[union-attr]
        return texts.get(screens.LINES[1]) == names[first.station_id] and \
            texts.get(screens.AMOUNTS[1], "").startswith(f"可借{first.bikes_available}  ")
    await until(shows_now, 25)


async def _swipe(town: Town, k: SimKiosk, card: Card | None, fault: str | None = None,
                 then: Callable[[], Awaitable[None]] | None = None) -> str:
    """Place the card, wait for the kiosk to finish, return the screen's title;
    the whole screen as shown is kept in `shown_screen` (removal clears it).
    `then` runs while the card still lies on the reader."""
    assert k.module is not None and k.screen is not None
    shown = len(k.screen.shown)
    k.module.fault = fault
    k.module.place(card)
    # "reading", then the answer. Counted from "reading", not from the card's
    # placing: a kiosk just up may still be drawing its first idle page then.
    reading = screens.message("reading")[1]

    def answer() -> dict[int, str] | None:
        titles = [texts.get(screens.VP[0]) for _, texts in k.screen.shown[shown:]]  # type: ignore[union-attr]
        if reading not in titles:
            return None
        after = titles.index(reading) + 1
        return k.screen.shown[shown + after][1] if len(titles) > after else None  # type: ignore[union-attr]
    texts = await until(answer, 15, "the answer after reading")
    title = texts[screens.VP[0]]
    shown_screen.clear()
    shown_screen.update(texts)
    k.module.fault = None
    if then is not None:
        await then()
    k.module.place(None)
    await until(lambda: k.screen.page == screens._PAGE_IDLE, 10)  # type: ignore[union-attr]
    return title


def _seconds_left(footer: str) -> int:
    m = re.fullmatch(r"请取回身份证，本页(\d+)秒后返回", footer)
    assert m, footer
    return int(m.group(1))


def test_swipe_shows_and_speaks_payments_then_privacy_scan(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    people: list[Card] = []
    tokens: list[str] = []

    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=2, kiosks=1) as town:
            await town.wait_online()
            k = town.kiosks[0]
            assert k.screen is not None and k.voice is not None and town.edge is not None
            await _idle_shows_nearby_bikes(town, k)
            rng = random.Random(5)
            card = fictional_card(rng)
            people.append(card)
            tokens.append(await town.villager(card, RECORDS))

            async def counts_down() -> None:
                # The footer counts the page's seconds down, from show_s.
                left = _seconds_left(shown_screen[screens.VP[3]])
                assert 0 < left <= 30
                await until(lambda: _seconds_left(k.screen.texts[screens.VP[3]])  # type: ignore[union-attr]
                            < left, 10)
            title = await _swipe(town, k, card, then=counts_down)
            assert title == "惠民资金查询结果"
            first = shown_screen[screens.LINES[0]]
            assert idcard.mask_name(card.name) in first
            assert idcard.mask_id(card.id_number) in first
            rows = [(shown_screen[v], shown_screen[a])
                    for v, a in zip(screens.LINES[1:3], screens.AMOUNTS[1:3], strict=True)]
            assert rows[0] == ("城乡居民基础养老金  2026-06-15", "153.00元")  # newest first
            assert rows[1] == ("耕地地力保护补贴  2026-03-01", "123.45元")
            assert (shown_screen[screens.LINES[5]], shown_screen[screens.AMOUNTS[5]]) == \
                ("共2笔 合计", "276.45元")
            assert k.voice.spoken[-1] == ("您共领取补贴276.45元，最近一笔是城乡居民基础养老金，"
                                          "153.00元，2026-06-15发放")
            # The backend goes silent: the edge answers from its cache, dated.
            town.edge.funds.fresh_s = 0
            assert town.backend is not None
            town.backend.delay_s = 5
            await _swipe(town, k, card)
            assert "服务暂不可用，显示" in shown_screen[screens.VP[3]]
            assert town.edge.metrics.get("funds.lookup", "stale") == 1
            town.backend.delay_s = 0
            # Someone the backend does not know; then bad cards, each with a clear screen.
            stranger = fictional_card(rng)
            people.append(stranger)
            assert await _swipe(town, k, stranger) == screens.message("unknown")[1]
            bad = fictional_card(rng)
            bad.id_number = bad.id_number[:17] + ("0" if bad.id_number[17] != "0" else "1")
            people.append(bad)
            assert await _swipe(town, k, bad) == screens.message("invalid")[1]
            old = fictional_card(rng, valid_to="20200101")
            people.append(old)
            assert await _swipe(town, k, old) == screens.message("expired")[1]
            foreign = fictional_card(rng, card_type="J")
            people.append(foreign)
            assert await _swipe(town, k, foreign) == screens.message("card_type")[1]
            assert await _swipe(town, k, card, "pull_mid_read") == \
                screens.message("pulled")[1]
            assert await _swipe(town, k, card, "checksum") in (
                screens.message("unreadable")[1], screens.message("pulled")[1])
            # One answer lost on the module's line is not a bad card: asked again.
            assert await _swipe(town, k, card, "lost_answer") == "惠民资金查询结果"
            # ...and the kiosk still works.
            assert await _swipe(town, k, card) == "惠民资金查询结果"
            assert k.restarts == 0
            # Privacy: what crossed the kiosk's edge line, display and voice lines.
            crossed = b"".join(bytes(t) for ln in k.lines.values() for t in ln.taps)
            _assert_clean(crossed, people, "serial lines")
            assert k.screen.raw and k.voice.raw
    run(main())
    # After shutdown: every log, database and file the town wrote, and the logs.
    for p in tmp_path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            _assert_clean(p.read_bytes(), people, str(p))
            if p.suffix == ".log":  # nor a lookup token's prefix: the region key reverses it
                assert not any(t[:8].encode() in p.read_bytes() for t in tokens), p
    _assert_clean(caplog.text.encode(), people, "logs")
    assert tokens and not any(t[:8] in caplog.text for t in tokens)


def _assert_clean(blob: bytes, people: list[Card], where: str) -> None:
    for c in people:
        for form in (c.id_number.encode(), c.id_number.encode("utf-16-le"),
                     c.id_number.encode("utf-16-be"), c.name.encode(),
                     c.name.encode("utf-16-le"), c.name.encode("utf-16-be")):
            assert form not in blob, f"personal data in {where}"


def test_edge_refreshes_cached_fund_records_in_the_background(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=2, mqtt_share=0, seed=3, kiosks=1) as town:
            await town.wait_online()
            assert town.edge is not None and town.backend is not None
            card = fictional_card(random.Random(8))
            tok = await town.villager(card, RECORDS[:1])
            first = await town.edge.funds.lookup(tok)
            assert first["ok"] and len(first["records"]) == 1
            await town.villager(card, RECORDS[1:])  # a new payment at the backend
            task = asyncio.create_task(town.edge.funds.refresh(every_s=0.1))
            try:
                await until(lambda: town.edge.metrics.get("funds.refreshed") >= 1, 10)  # type: ignore[union-attr]
            finally:
                task.cancel()
            cached = await town.edge.store.funds_get(tok)
            assert cached is not None and "城乡居民基础养老金" in cached[0]
    run(main())


@needs_mosquitto
def test_a_kiosk_on_mqtt_swipes_and_nothing_personal_crosses_the_broker(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The same kiosk firmware on MQTT (a village centre on Wi-Fi or 4G): the
    lookup and the answer travel as QoS 1 messages through Mosquitto; a sniffer
    subscribed to every topic, the broker's own persistence file and every log
    hold no clear number or name."""
    import aiomqtt

    caplog.set_level(logging.DEBUG)
    people: list[Card] = []
    sniffed = bytearray()

    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=4, kiosks=1,
                        kiosk_link="mqtt") as town:
            assert town.broker is not None and town.edge is not None
            k = town.kiosks[0]
            assert k.link == "mqtt" and "edge" not in k.lines

            # The broker takes no anonymous client: the sniffer gets a read-only
            # monitoring account, as a county's privacy audit would.
            pw = town.broker.account("privacy-audit", "monitor")
            await town.broker.reload()

            async def sniff() -> None:
                async with aiomqtt.Client("127.0.0.1", town.broker.port,  # type: ignore[union-attr]
                                          identifier="privacy-sniffer", username="privacy-audit",
                                          password=pw) as c:
                    await c.subscribe("#", qos=1)
                    async for m in c.messages:
                        sniffed.extend(str(m.topic).encode() + b" " + bytes(m.payload))  # type: ignore[arg-type]

            sniffer = asyncio.create_task(sniff())
            await town.wait_online()
            assert k.screen is not None and k.voice is not None
            await _idle_shows_nearby_bikes(town, k)
            rng = random.Random(11)
            card = fictional_card(rng)
            people.append(card)
            await town.villager(card, RECORDS)
            assert await _swipe(town, k, card) == "惠民资金查询结果"
            assert shown_screen[screens.AMOUNTS[5]] == "276.45元"
            assert idcard.mask_id(card.id_number) in shown_screen[screens.LINES[0]]
            assert k.voice.spoken[-1].startswith("您共领取补贴276.45元")
            stranger = fictional_card(rng)
            people.append(stranger)
            assert await _swipe(town, k, stranger) == screens.message("unknown")[1]
            assert town.edge.metrics.get("funds.lookup", "backend") >= 1
            assert k.restarts == 0
            sniffer.cancel()
            # The sniffer saw the lookups and the answers: the scan below looked at them.
            assert b"kiosk-001/lookup" in sniffed and b'"funds"' in sniffed
            _assert_clean(bytes(sniffed), people, "MQTT messages")
            crossed = b"".join(bytes(t) for ln in k.lines.values() for t in ln.taps)
            _assert_clean(crossed, people, "display and voice lines")
    run(main())
    for p in tmp_path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            _assert_clean(p.read_bytes(), people, str(p))
    _assert_clean(caplog.text.encode(), people, "logs")


def test_a_forged_funds_answer_never_reaches_the_screen(tmp_path: Path) -> None:
    """Someone on the kiosk's line answers its lookup first, with the right
    request id: unsealed, then sealed with another key. The kiosk refuses both
    (no valid MAC under its key) and shows the edge's genuine answer."""
    from wire import auth, message

    from edge.adapters.transports.serial import SerialTransport

    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=6, kiosks=1) as town:
            await town.wait_online()
            edge = town.edge
            assert edge is not None
            k = town.kiosks[0]
            t = next(x for x in edge.transports
                     if isinstance(x, SerialTransport) and k.dev in x.cfg.devices)
            genuine = edge.funds._answer

            async def forger_first(dev, lookup):  # type: ignore[no-untyped-def]
                forged = message.encode({"t": "funds", "id": lookup.id, "ok": True,
                                         "records": [["伪造补贴", 99999900, "2026-11-30", "已发放"]],
                                         "as_of": 1, "stale": False})
                assert t.link is not None
                t.link.send(forged)
                t.link.send(bytes(auth.seal(auth.Key(b"x" * 32), auth.DOWN, forged)))
                t._wake.set()
                await asyncio.sleep(0.3)
                await genuine(dev, lookup)

            edge.funds._answer = forger_first  # type: ignore[method-assign]
            card = fictional_card(random.Random(8))
            await town.villager(card, RECORDS)
            assert await _swipe(town, k, card) == "惠民资金查询结果"
            assert shown_screen[screens.AMOUNTS[5]] == "276.45元"
            assert "伪造" not in "".join(shown_screen.values())
            log = k.log_path.read_text()
            assert log.count("guard: refused funds from edge: bad mac") == 2
    run(main())


def test_a_kiosk_with_its_region_key_in_the_key_store(tmp_path: Path) -> None:
    """"region_key": "efuse": the kiosk asks the board for the token
    (hal.lookup_token: the ESP32-S3's HMAC peripheral; emulated on this port)
    and holds no key itself; its config.json has none."""
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=9, kiosks=1,
                        kiosk_key_store=True) as town:
            await town.wait_online()
            k = town.kiosks[0]
            cfg = json.loads((k.flash / "config.json").read_text())
            assert cfg["region_key"] == "efuse"
            assert town.region_key.hex() not in (k.flash / "config.json").read_text()
            card = fictional_card(random.Random(12))
            await town.villager(card, RECORDS)
            assert await _swipe(town, k, card) == "惠民资金查询结果"
            assert shown_screen[screens.AMOUNTS[5]] == "276.45元"
    run(main())
