"""`huimin flash` and `huimin provision` against a real MicroPython REPL: the
unix port's interpreter on a pseudo-terminal made by socat, its working
directory standing in for the device's filesystem; mpremote's transport
talks raw REPL to it, as to a board on USB. Also: a cable pulled mid-flash
(clear error, device not marked done, the next flash resumes), a wrong port,
a device that does not answer, and registration with the edge."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edge.adapters.device_keys import load_devices
from hardware.sim.town import Town
from tests.conftest import run
from tools.cli import main as cli
from tools.firmware import build, micropython_path, read_manifest
from tools.flash import RECORD, FlashError, flash, plan
from tools.provision import device_config, provision

pytestmark = pytest.mark.skipif(shutil.which("socat") is None,
                                reason="socat is not installed (./run-tests installs it)")


class Device:
    """A MicroPython REPL on a pty; fs is its filesystem."""

    def __init__(self, tmp: Path) -> None:
        self.fs = tmp / "fs"
        self.fs.mkdir(exist_ok=True)
        self.port = str(tmp / "ttyDEV")
        self.proc: subprocess.Popen[bytes] | None = None

    def plug(self) -> None:
        Path(self.port).unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.port}",
             f"EXEC:{micropython_path()} -X heapsize=256K,pty,raw,echo=0,stderr,setsid,ctty"],
            cwd=self.fs, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if Path(self.port).exists():
                time.sleep(0.3)  # the interpreter's banner
                return
            time.sleep(0.05)
        raise RuntimeError("socat made no pty")

    def pull(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture()
def device(tmp_path: Path):  # type: ignore[no-untyped-def]
    d = Device(tmp_path)
    d.plug()
    yield d
    d.pull()


def _on_device(fs: Path) -> dict[str, str]:
    return {p.relative_to(fs).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in fs.rglob("*") if p.is_file()}


def test_flash_copies_and_verifies_every_file_then_resumes_after_a_pulled_cable(
        device: Device) -> None:
    image = build("unix")
    files = plan(image)
    # The cable comes out after five files.
    with pytest.raises(FlashError, match=r"connection lost after 5 of .*run flash again"):
        flash(device.port, image, after_file=lambda n: device.pull() if n == 5 else None)
    assert not (device.fs / "boot_record").exists()  # not bootable: never taken for done
    device.plug()
    r = flash(device.port, image)
    assert r["skipped"] >= 5 and r["written"] + r["skipped"] == len(files)
    got = _on_device(device.fs)
    for _, dest, sha in files:
        assert got[dest] == sha, dest
    assert (device.fs / "boot_record").read_text() == RECORD
    assert not [p for p in got if p.endswith(".part")]
    # Anti-rollback from the first boot: the image's security version is the floor.
    security = read_manifest(image)["security"]
    assert (device.fs / "ota_floor").read_text() == str(security)
    # Flashing again writes nothing: every hash already matches.
    assert flash(device.port, image)["written"] == 0
    # An image older than the device's floor is refused, and a damaged floor too.
    (device.fs / "ota_floor").write_text(str(security + 1))
    with pytest.raises(FlashError, match="security floor is"):
        flash(device.port, image)
    (device.fs / "ota_floor").write_text("7x")
    with pytest.raises(FlashError, match="ota_floor is damaged"):
        flash(device.port, image)
    (device.fs / "ota_floor").write_text(str(security))
    # What was flashed boots as far as loading the dock app (no hardware here).
    device.pull()
    (device.fs / "config.json").write_text(json.dumps(
        {"dev": "d1", "kind": "dock", "slots": 4, "link": "serial", "uart": "/dev/null"}))
    probe = (device.fs / "main.py").read_text().split("import device  # noqa: E402\n")[0]
    probe += "import device, uplink.serial, apps.dock.app\nprint('loaded', f, r)\n"
    out = subprocess.run([micropython_path(), "-X", "heapsize=64K", "-c", probe],
                         cwd=device.fs, capture_output=True, text=True, timeout=30)
    assert "loaded slot_a" in out.stdout, out.stdout + out.stderr
    assert read_manifest(image)["version"]


def test_provision_writes_the_identity_and_registers_with_the_edge(
        device: Device, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A new device: flashed, and left for provision (nothing to boot with yet).
    assert cli(["flash", "--port", device.port]) == 0
    assert "Not provisioned yet" in capsys.readouterr().out
    cfg = device_config("dock-009", "dock", "anji", "mqtt", 8, "", {"host": "10.0.0.2",
                        "port": 8883, "user": "dock-009", "password": "s3cret", "ca": "ca.der"},
                        "", "ab" * 32, {})
    assert len(bytes.fromhex(cfg["cmd_key"])) == 32  # a command key made for the device
    provision(device.port, cfg, {"ca.der": b"\x30\x82county-ca"})
    assert json.loads((device.fs / "config.json").read_text()) == cfg
    assert (device.fs / "ca.der").read_bytes() == b"\x30\x82county-ca"
    # Flashed again once provisioned: nothing to write, then the device is reset
    # (on the unix port a reset is the interpreter's exit).
    assert cli(["flash", "--port", device.port]) == 0
    out = capsys.readouterr().out
    assert "0 files written" in out and "Reset:" in out
    assert device.proc is not None
    assert device.proc.wait(timeout=10) is not None
    with pytest.raises(FlashError, match="region key"):
        device_config("kiosk-2", "kiosk", "anji", "serial", 0, "/dev/ttyS1", None, "", "", {})

    async def main() -> None:
        async with Town(tmp_path / "town", docks=1, slots=2, mqtt_share=0, seed=1) as town:
            await town.wait_online()
            edge = f"http://127.0.0.1:{town.http_port}"
            import asyncio

            from tools.broker import password_hash
            from tools.provision import register
            key, pw_hash = "5a" * 32, password_hash("s3cret")
            with pytest.raises(FlashError, match="401"):  # no technician token
                await asyncio.to_thread(register, edge, "dock-009", "anji-001", "dock", key,
                                        pw_hash, "")
            with pytest.raises(FlashError, match="401"):  # a made-up one
                await asyncio.to_thread(register, edge, "dock-009", "anji-001", "dock", key,
                                        pw_hash, "hmt_guessed")
            assert town.edge is not None and town.edge.registry.get("dock-009") is None
            await asyncio.to_thread(register, edge, "dock-009", "anji-001", "dock", key,
                                    pw_hash, town.token)
            d = town.edge.registry.get("dock-009")
            assert d is not None and d.station == "anji-001"
            assert town.edge.keys.has("dock-009")
            # the edge keeps the key and the hash, in a file only it may read
            keys = (tmp_path / "town" / "device-keys.toml")
            assert keys.stat().st_mode & 0o077 == 0
            assert key in keys.read_text() and pw_hash in keys.read_text()
            assert "s3cret" not in keys.read_text()
            with pytest.raises(FlashError, match="unknown_station"):
                await asyncio.to_thread(register, edge, "dock-010", "nowhere", "dock", key,
                                        None, town.token)
    run(main())


def test_wrong_port_and_silent_device_fail_clearly(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["flash", "--port", str(tmp_path / "ttyNOPE")]) == 1
    assert "no such port" in capsys.readouterr().err
    # A pty with nothing behind it: the device does not answer.
    port = tmp_path / "ttySILENT"
    p = subprocess.Popen(["socat", f"pty,raw,echo=0,link={port}", f"pty,raw,echo=0,link={port}2"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if port.exists():
                break
            time.sleep(0.05)
        assert cli(["flash", "--port", str(port)]) == 1
        assert "does not answer" in capsys.readouterr().err
    finally:
        p.kill()


def test_diag_runs_the_dock_self_test_against_the_emulated_hardware(
        device: Device, capsys: pytest.CaptureFixture[str]) -> None:
    """Slot 0 empty and working, slot 1 holds a bike (left locked, its tag
    read), slot 2's bolt is jammed: the table says so and diag exits 1."""
    import asyncio
    import threading

    from hardware.dock_emulator import DockEmulator

    flash(device.port, build("unix"))
    loop = asyncio.new_event_loop()
    emu = DockEmulator("dock-007", 3, {1: "0B00000042"})
    emu.slots[2].jammed = True
    addr = loop.run_until_complete(emu.start())
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()
    try:
        provision(device.port, device_config("dock-007", "dock", "anji", "serial", 3,
                                             "/dev/null", None, "", "", {"bus": addr}))
        rc = cli(["diag", "--port", device.port, "--no-reset"])
    finally:
        asyncio.run_coroutine_threadsafe(emu.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        th.join(5)
    out = capsys.readouterr().out
    assert rc == 1, out
    lines = {ln.split("  ")[0].strip(): ln for ln in out.splitlines()}
    assert "pass" in lines["slot 0 lock"] and "closed and opened" in lines["slot 0 lock"]
    assert "skip" in lines["slot 1 lock"] and "pass" in lines["slot 1 tag reader"]
    assert "FAIL" in lines["slot 2 lock"] and "did not close" in lines["slot 2 lock"]
    assert "5 checks, 1 failed" in out


def test_diag_runs_the_kiosk_self_test_against_the_emulated_modules(
        device: Device, capsys: pytest.CaptureFixture[str]) -> None:
    """A kiosk wired to the emulated card module (a card on it), display and
    voice module: every check passes, the voice module is made to speak, and
    nothing read from the card reaches the table. Then the module's SAM fails
    its self-test and the voice module's cable is pulled: two FAILs, exit 1."""
    import asyncio
    import random
    import threading

    from hardware.idcard_emulator import IdCardModule, fictional_card
    from hardware.kiosk_emulator import HmiScreen, VoiceModule
    from hardware.serial_line import SerialLine

    flash(device.port, build("unix"))
    loop = asyncio.new_event_loop()
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()
    lines = {name: SerialLine() for name in ("sam", "display", "voice")}

    async def wire_up() -> tuple[IdCardModule, HmiScreen, VoiceModule]:
        for ln in lines.values():
            ln.open()
        peers = (IdCardModule(lines["sam"].paths[1]), HmiScreen(lines["display"].paths[1]),
                 VoiceModule(lines["voice"].paths[1]))
        for p in peers:
            await p.start()
        return peers

    module, screen, voice = asyncio.run_coroutine_threadsafe(wire_up(), loop).result(5)
    card = fictional_card(random.Random(5))
    module.place(card)
    screen.page = 1
    try:
        provision(device.port, device_config(
            "kiosk-007", "kiosk", "anji", "serial", 0, "/dev/null", None, "ab" * 16, "",
            {f"{n}_uart": ln.paths[0] for n, ln in lines.items()}))
        assert cli(["diag", "--port", device.port, "--no-reset"]) == 0
        healthy = capsys.readouterr().out
        module.fault = "selftest"
        lines["voice"].plugged = False
        rc = cli(["diag", "--port", device.port, "--no-reset"])
        broken = capsys.readouterr().out
    finally:
        async def close() -> None:
            for p in (module, screen, voice):
                await p.close()
            for ln in lines.values():
                ln.close()
        asyncio.run_coroutine_threadsafe(close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        th.join(5)
    rows = {ln.split("  ")[0].strip(): ln for ln in healthy.splitlines()}
    assert "pass" in rows["card module"] and "pass" in rows["card reading"], healthy
    assert "check digit valid" in rows["card reading"]
    assert "pass" in rows["display"] and "page 1" in rows["display"], healthy
    assert "pass" in rows["voice module"] and "idle" in rows["voice module"], healthy
    assert "4 checks, 0 failed" in healthy
    assert voice.spoken == ["语音自检"]
    for secret in (card.id_number, card.name, card.id_number[-6:]):
        assert secret not in healthy and secret not in broken
    assert rc == 1, broken
    rows = {ln.split("  ")[0].strip(): ln for ln in broken.splitlines()}
    assert "FAIL" in rows["card module"] and "replace the module" in rows["card module"]
    assert "FAIL" in rows["voice module"] and "no answer" in rows["voice module"]
    assert "pass" in rows["display"]
    assert "3 checks, 2 failed" in broken


def test_provision_a_kiosk_on_wifi_masks_its_secrets(
        device: Device, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An ESP32-S3 kiosk reaches the edge over Wi-Fi: provision writes the
    network and the broker (a new account, TLS with the county CA), takes the
    Wi-Fi password and region key from the environment (never the command
    line), and prints no password, command key or region key."""
    keys = tmp_path / "device-keys.toml"
    ca = tmp_path / "ca.der"
    ca.write_bytes(b"\x30\x82county-ca")
    monkeypatch.setenv("HUIMIN_REGION_KEY", "ab" * 16)
    monkeypatch.setenv("HUIMIN_WIFI_PASSWORD", "wifi-secret")
    base = ["provision", "--port", device.port, "--dev", "kiosk-005", "--kind", "kiosk",
            "--site", "anji", "--keys-file", str(keys), "--no-reset"]
    assert cli([*base, "--wifi-ssid", "centre"]) == 1  # Wi-Fi without a broker
    assert "give --mqtt-host" in capsys.readouterr().err
    assert cli([*base, "--mqtt-host", "10.0.0.2"]) == 1  # MQTT without the county CA
    assert "--ca" in capsys.readouterr().err
    assert cli([*base, "--mqtt-host", "10.0.0.2", "--ca", str(ca),
                "--wifi-ssid", "village-centre"]) == 0
    out = capsys.readouterr().out
    cfg = json.loads((device.fs / "config.json").read_text())
    assert cfg["link"] == "mqtt" and cfg["wifi"] == {"ssid": "village-centre",
                                                     "password": "wifi-secret"}
    assert cfg["mqtt"]["user"] == "kiosk-005" and cfg["mqtt"]["ca"] == "ca.der"
    assert (device.fs / "ca.der").read_bytes() == ca.read_bytes()
    assert "village-centre" in out
    # The edge's keys file got the command key and the broker password's hash.
    entry = load_devices(keys)["kiosk-005"]
    assert entry["command_key"] == cfg["cmd_key"]
    assert entry["mqtt_password"].startswith("$7$")
    assert cfg["mqtt"]["password"] not in keys.read_text()
    for secret in ("wifi-secret", cfg["mqtt"]["password"], "ab" * 16, cfg["cmd_key"]):
        assert secret not in out


def test_flash_asks_the_device_what_it_is_and_refuses_another_boards_image(
        device: Device, capsys: pytest.CaptureFixture[str]) -> None:
    """No --board: the device says what it is (sys.platform, its machine). An ESP32-S3
    image for the simulator's port (or the unix image for an ESP32) is refused before
    a byte is written."""
    for board in ("esp32s3", "esp32s3-kiosk"):
        assert cli(["flash", "--port", device.port, "--board", board]) == 1
        err = capsys.readouterr().err
        assert f"is MicroPython's unix port (the simulator's): an image for --board {board} " \
               "would not run on it; use --board unix" in err, err
    assert not (device.fs / "main.py").exists() and not (device.fs / "slot_a").exists()
    assert cli(["flash", "--port", device.port, "--no-reset"]) == 0
    out = capsys.readouterr().out
    assert "the device is for --board unix" in out and "flashed and verified" in out, out
    assert (device.fs / "boot_record").read_text() == RECORD
