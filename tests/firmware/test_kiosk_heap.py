"""The kiosk firmware as shipped (.mpy) in the heap it ships with for its link
(hardware/sim/spec.py): a run of swipes (known villagers, a stranger, a bad card) with
no MemoryError, no restart, and the free heap each heartbeat reports never
below 10% of the heap; and a swipe interning nothing
(MicroPython interns a str's characters when code takes them one by one, so
every new name read would have grown the heap, and stayed in it, for good)."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
from pathlib import Path

import pytest

from hardware.idcard_emulator import fictional_card
from tests.conftest import needs_mosquitto, run, until
from tests.kiosk.test_swipe import RECORDS, _swipe
from tools.firmware import build, micropython_path
from tests.firmware.test_heap_soak import floor
from hardware.sim.spec import KIOSK_HEAP, KIOSK_MQTT_HEAP
from hardware.sim.town import Town


@pytest.mark.parametrize("link,heap,rounds", [
    ("serial", KIOSK_HEAP, 3),
    # The MQTT client and TLS cost more than the serial link (docs/kiosk.md).
    pytest.param("mqtt", KIOSK_MQTT_HEAP, 2, marks=needs_mosquitto),
])
def test_kiosk_soaks_in_its_heap(tmp_path: Path, link: str, heap: str, rounds: int) -> None:
    async def main() -> None:
        # Swipes come back to back here, faster than villagers do: the edge's
        # per-kiosk lookup rate (30 a minute by default) is raised for the soak.
        async with Town(tmp_path, docks=1, slots=2, mqtt_share=0, seed=4, kiosks=1,
                        heartbeat_s=2, kiosk_heap=heap, kiosk_link=link,
                        kiosk_lookups_per_minute=600) as town:
            await town.wait_online()
            k = town.kiosks[0]
            edge = town.edge
            assert edge is not None
            rng = random.Random(11)
            people = [fictional_card(rng) for _ in range(5)]
            for p in people:
                await town.villager(p, RECORDS * 3)  # six records: the most a kiosk is sent
            stranger = fictional_card(rng)
            bad = fictional_card(rng)
            bad.id_number = bad.id_number[:17] + ("1" if bad.id_number[17] != "1" else "2")
            low = 1 << 30
            assert k.link == link
            for rnd in range(rounds):
                for p in people:
                    assert await _swipe(town, k, p) == "惠民资金查询结果", f"round {rnd}"
                assert await _swipe(town, k, stranger) == "未查询到您的补贴发放记录"
                assert await _swipe(town, k, bad) == "身份证号码校验失败，请到窗口办理"
                dev = edge.registry.devices[k.dev]
                dev.heap_free = None
                await until(lambda d=dev: d.heap_free is not None, 10)  # the next heartbeat
                assert dev.heap_free is not None and dev.heap_low is not None
                low = min(low, dev.heap_low)  # the kiosk's own lowest since boot
            print(f"kiosk on {link} in {heap}: lowest free heap {low}")
            log = k.log_path.read_text()
            assert "MemoryError" not in log and "no heap" not in log
            assert k.restarts == 0
            assert low >= floor(heap), f"{low} bytes free of {heap}"
    run(main())


def _micropython(code: str) -> str:
    fw = build("unix")
    prelude = f"import sys, micropython; sys.path[:0] = [{str(fw / 'lib')!r}, {str(fw)!r}]\n"
    r = subprocess.run([micropython_path(), "-X", "heapsize=256K", "-c", prelude + code],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_a_swipe_interns_nothing() -> None:
    card = fictional_card(random.Random(3), name="龘靐齉爨")  # characters no code holds
    out = _micropython(f"""
from wire import idcard, idcard_module, hmi
from apps.kiosk import screens
text = idcard_module.build_text({{"name": {card.name!r}, "id": {card.id_number!r},
                                  "valid_to": "长期", "address": "黄平县旧州镇寨碧村"}})
buf = bytearray(258)
def swipe():
    name, number, valid_to, resident = idcard.person(text)
    assert resident and idcard.check_id(number) is None and not idcard.expired(valid_to, "20261123")
    tok = idcard.token(b"k" * 16, number)
    s = screens.result(idcard.mask_name(name), idcard.mask_id(number),
                       [["耕地地力保护补贴", 12345, "2026-03-01", "已发放"]], None)
    n = hmi.dwin_text(buf, 0x1000, name) + hmi.tts_say(buf, s[4])
    return tok, s, n
swipe()  # first call: whatever a first call makes
micropython.qstr_info()
swipe()
micropython.qstr_info()
""")
    counts = re.findall(r"n_qstr=(\d+)", out)
    assert len(counts) == 2 and counts[0] == counts[1], out
    assert card.name not in out
