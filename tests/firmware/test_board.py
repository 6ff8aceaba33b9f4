"""The ESP32-S3 board layer, run: the board's own hal (firmware/ports/esp32s3/hal.py)
on the port's `machine` and `network` as hardware/esp32s3_rom/ emulates them under
the unix port, wired to hardware/esp32s3_board.py. A town of board devices rents,
returns and answers a swipe through a Wi-Fi drop and a watchdog reset, and refuses
an image built for another board; the emulated port refuses what the port would."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
from pathlib import Path

import pytest

from hardware.esp32s3_board import board_pins
from hardware.idcard_emulator import fictional_card
from hardware.sim.audit import settle_and_audit
from hardware.sim.faults import Fault, Injector
from hardware.sim.spec import BOARD_HEAP, ROM_HEAP_K
from hardware.sim.town import Town
from tests.conftest import needs_mosquitto, run, until
from tests.firmware.test_ota import _boot_record, _push
from tests.kiosk.test_swipe import RECORDS, _swipe
from tools.firmware import BOARDS, build, build_rom, keygen, micropython_path, sign

DOCK_BOARD = json.loads((BOARDS / "esp32s3_dock.json").read_text())


def _on_the_rom(tmp_path: Path, code: str, pins: list[int],
                uarts: dict[str, str] | None = None) -> list[str]:
    """Run `code` under the unix port with the emulated modules on its path and a
    board emulator that is only a listening socket (enough for what is checked)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        (tmp_path / "board_wiring.json").write_text(json.dumps(
            {"bus": f"127.0.0.1:{server.getsockname()[1]}", "uart": uarts or {}, "pins": pins}))
        r = subprocess.run([micropython_path(), "-X", "heapsize=96K", "-c", code], cwd=tmp_path,
                           env={"MICROPYPATH": f":.frozen:{build_rom()}"}, capture_output=True,
                           text=True, timeout=60)
    finally:
        server.close()
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.split()


def test_the_emulated_port_refuses_what_the_port_or_the_board_would(tmp_path: Path) -> None:
    """For every GPIO number: a Pin is made exactly when the S3 has that GPIO and the
    board file owns it; UART ids above 2 do not exist; a pin has one driver."""
    pins = board_pins(DOCK_BOARD)
    made = _on_the_rom(tmp_path, """
import machine
for n in range(0, 60):
    try:
        machine.Pin(n, machine.Pin.IN)
        print(n)
    except ValueError:
        pass
""", pins)
    chip = set(range(0, 22)) | set(range(26, 49))
    assert {int(n) for n in made} == set(pins) & chip
    assert set(pins) - chip == set(), "the board file names a GPIO the S3 does not have"

    master, slave = os.openpty()  # a UART's far end

    def refused(code: str) -> str:
        return " ".join(_on_the_rom(tmp_path, f"""
import machine
try:
{code}
    print("made")
except ValueError as e:
    print(e)
""", pins, {"1": os.ttyname(slave)}))
    assert refused("    machine.UART(3, tx=43, rx=44)") == "UART(3) doesn't exist"
    assert refused("    machine.Pin(43)\n    machine.UART(1, tx=43, rx=44)") == \
        "GPIO43 is already driven by Pin"
    assert refused("    machine.UART(1, tx=43, rx=44)\n    machine.Pin(44)") == \
        "GPIO44 is already driven by UART1"
    assert refused("    machine.I2C(0, scl=9, sda=8)") == "made"
    assert refused("    machine.I2C(0, scl=9, sda=7)") == "GPIO7 is not on this board (board file)"
    os.close(master)
    os.close(slave)


def test_the_heap_allowed_for_the_emulated_modules_covers_them(tmp_path: Path) -> None:
    """hardware/sim/spec.py gives a board-emulated device ROM_HEAP_K more heap than
    the chip would need, for the modules a chip keeps in flash. Measured here with
    what the firmware has loaded by then (asyncio, json, sockets)."""
    code = """
import gc, asyncio, json, socket, select, io, termios
_ = (asyncio.StreamReader, asyncio.Event, asyncio.wait_for)
gc.collect(); a = gc.mem_free()
import machine, network
gc.collect(); print(a - gc.mem_free())
"""
    used = int(_on_the_rom(tmp_path, code, board_pins(DOCK_BOARD))[0])
    print(f"the emulated machine and network take {used} bytes; {ROM_HEAP_K}K allowed")
    assert used <= ROM_HEAP_K * 1024


@pytest.fixture(scope="module")
def unix_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    d = tmp_path_factory.mktemp("board-ota")
    pub = keygen(d / "key.pem")
    image = build("unix", d / "img-unix", "0.2.0")
    sign(image, d / "key.pem")
    return pub, image, d / "key.pem"


@needs_mosquitto
def test_board_devices_rent_return_and_swipe_through_a_wifi_drop_and_a_watchdog_reset(
        tmp_path: Path, unix_image: tuple[str, Path, Path]) -> None:
    pub, image, _ = unix_image

    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=12, mqtt_share=0.5, seed=23, fill=0.5,
                        heartbeat_s=2, kiosks=1, kiosk_link="mqtt", board="esp32s3",
                        ota_key=pub) as town:
            await town.wait_online(40)
            serial, wifi = town.docks
            k = town.kiosks[0]
            assert serial.link == "serial" and wifi.link == "mqtt" and serial.board is not None
            assert k.board is not None and k.radio is not None
            assert "hal: wifi huimin-sim" in wifi.log_path.read_text()
            # Rent and return on each dock: slots behind the expanders, tags behind the mux.
            for d in town.docks:
                bike = await town.rent(d)
                assert bike is not None, d.dev
                await until(lambda d=d: "event rented" in d.log_path.read_text(), 15, "the rent")
                slot = town.give_back(d, bike)
                await until(lambda d=d, b=bike, s=slot: f"event returned slot={s} bike={b}"
                            in d.log_path.read_text(), 15, "the return")
            # A swipe at the kiosk, on its board's UARTs, over Wi-Fi.
            card = fictional_card(random.Random(3))
            await town.villager(card, RECORDS)
            assert await _swipe(town, k, card) == "惠民资金查询结果"

            # Riders ride while the Wi-Fi dock's access point goes and the serial
            # dock's interpreter hangs until its watchdog resets it.
            riders = asyncio.create_task(town.riders(period=0.4))
            injector = Injector(town, seed=3)
            await injector.run([Fault(1.0, "wifi_drop", 6.0, wifi.dev),
                                Fault(2.0, "loop_stall", 30.0, serial.dev)])
            assert any("reset it" in x for x in injector.done), injector.done
            assert serial.board.watchdog_resets == 1
            await until(lambda: "boot 2" in serial.log_path.read_text(), 15)
            await town.wait_online(60)
            await asyncio.sleep(3.0)
            riders.cancel()
            a = await settle_and_audit(town)
            assert len(a.accepted) >= 6, a.table()
            assert not a.lost and not a.duplicated and not a.in_flight, a.table()

            # After both faults the kiosk still answers.
            assert await _swipe(town, k, card) == "惠民资金查询结果"

            # An image built for the simulator's port: the board's bootloader refuses it.
            r = await _push(town, image, [serial.dev], wave=1)
            p = r["devices"][serial.dev]
            assert r["state"] == "stopped" and "refused:board" in p["error"], r
            assert _boot_record(serial.flash)[4] == "refused:board"
            await town.wait_online(60)
            # Each board device keeps 10% of the heap its chip would have free at its
            # lowest (the heap here less the emulated modules' allowance).
            assert town.edge is not None
            lows = {}
            for d in [*town.docks, *town.kiosks]:
                log = d.log_path.read_text(errors="replace")
                assert "MemoryError" not in log, f"{d.dev} ran out of heap"
                lows[d.dev] = town.edge.registry.devices[d.dev].heap_low
            chip = BOARD_HEAP["esp32s3"]
            heaps = {d.dev: int(chip[f"dock-{d.link}"].rstrip("K")) for d in town.docks}
            heaps[k.dev] = int(chip["kiosk-mqtt"].rstrip("K"))
            print("lowest free heap:", {d: f"{lows[d]} of {heaps[d]}K" for d in lows})
            for dev, low in lows.items():
                assert low is not None and low >= heaps[dev] * 1024 // 10, (dev, low)
    run(main())
