"""Signed over-the-air updates with the dock firmware under MicroPython
(docs/ota.md): the device's Ed25519 verifier against RFC 8032 and the
`cryptography` library under both interpreters; a rollout in waves that
updates a dock on a serial line and one on MQTT; an image with a bad signature
refused by the bootloader; and an image that boots but is never heard by the
edge, rolled back by the device itself, which stops the rollout."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import needs_mosquitto, run, until
from tools.firmware import FIRMWARE, build, install, keygen, micropython_path, sign
from tools.ota import push
from hardware.sim.spec import HEAP
from hardware.sim.town import Town

# RFC 8032, section 7.1: TEST 1, 2 and 3 (secret key, public key, message, signature).
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


def _vectors() -> list[tuple[str, str, str, bool]]:
    """(public, message, signature, valid): RFC 8032's, then the library's own
    over a manifest-sized message, then tampered ones, small-order points and
    non-canonical encodings."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = []
    for sk, pk, msg, sig in RFC8032:
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sk))
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
        assert raw.hex() == pk and key.sign(bytes.fromhex(msg)).hex() == sig  # the vectors
        out.append((pk, msg, sig, True))
    key = Ed25519PrivateKey.generate()
    pk = key.public_key().public_bytes(serialization.Encoding.Raw,
                                      serialization.PublicFormat.Raw).hex()
    msg = (b'{"version": "0.2.0", "files": {}}' * 60).hex()
    sig = key.sign(bytes.fromhex(msg)).hex()
    out.append((pk, msg, sig, True))
    out.append((pk, msg[:-2] + "00", sig, False))  # message changed
    out.append((pk, msg, sig[:-2] + ("00" if sig[-2:] != "00" else "01"), False))  # sig changed
    out.append((RFC8032[1][1], msg, sig, False))  # someone else's key
    # Small-order keys and R: with A = R = the neutral point and s = 0 a plain
    # RFC 8032 check accepts the "signature" for any message at all.
    neutral = "01" + "00" * 31
    torsion = [neutral, "ec" + "ff" * 30 + "7f",  # order 1 and 2 (y = 1, y = -1)
               "00" * 32, "00" * 31 + "80",  # order 4 (y = 0)
               "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
               "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"]
    for a in torsion:
        out.append((a, msg, neutral + "00" * 32, False))
    out.append((pk, msg, neutral + sig[64:], False))  # a real key, small-order R
    # Non-canonical encodings: y >= p for the key (1 + p), and s + L for s.
    out.append(("ee" + "ff" * 30 + "7f", msg, neutral + "00" * 32, False))
    _, pk1, msg1, sig1 = RFC8032[0]
    s_plus_l = int.from_bytes(bytes.fromhex(sig1[64:]), "little") + 2 ** 252 + \
        27742317777372353535851937790883648493
    out.append((pk1, msg1, sig1[:64] + s_plus_l.to_bytes(32, "little").hex(), False))
    return out


def test_ed25519_verifier_matches_rfc8032_and_cryptography_on_both_interpreters() -> None:
    import importlib.util

    vectors = _vectors()
    spec = importlib.util.spec_from_file_location("ed25519_fw",
                                                  FIRMWARE / "bootloader" / "ed25519.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for pk, msg, sig, valid in vectors:
        assert mod.verify(bytes.fromhex(pk), bytes.fromhex(msg), bytes.fromhex(sig)) is valid
    # The shipped .mpy under MicroPython, in the dock's heap.
    image = build("unix")
    code = ("import sys, binascii as b\nsys.path.insert(0, %r)\nimport ed25519\n" %
            str(image / "bootloader")
            + "".join("print(ed25519.verify(b.unhexlify(%r), b.unhexlify(%r), b.unhexlify(%r)))\n"
                      % v[:3] for v in vectors))
    r = subprocess.run([micropython_path(), "-X", f"heapsize={HEAP}", "-c", code],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(v[3]) for v in vectors]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The signing key, and images: 0.2.0 signed, 0.2.1 signed by another key,
    0.3.0 signed but broken (it never says hello, so the edge never hears it)."""
    d = tmp_path_factory.mktemp("ota")
    pub = keygen(d / "key.pem")
    keygen(d / "other.pem")
    good = build("unix", d / "img-0.2.0", "0.2.0")
    sign(good, d / "key.pem")
    forged = build("unix", d / "img-0.2.1", "0.2.1")
    sign(forged, d / "other.pem")
    src = d / "src"
    shutil.copytree(FIRMWARE, src)
    app = src / "apps" / "dock" / "app.py"
    text = app.read_text()
    marker = "    def _on_connect(self):\n"
    assert marker in text
    app.write_text(text.replace(marker, marker + "        return  # the bug in 0.3.0\n"))
    broken = build("unix", d / "img-0.3.0", "0.3.0", source=src)
    sign(broken, d / "key.pem")
    # Signed by us, but for the ESP32-S3 board.
    other_board = build("esp32s3", d / "img-0.4.0-s3", "0.4.0")
    sign(other_board, d / "key.pem")
    # Signed, then one file changed on the way (a bad copy, or someone's edit).
    tampered = d / "img-0.2.0-tampered"
    shutil.copytree(good, tampered)
    victim = next(p for p in sorted(tampered.rglob("*.mpy")))
    victim.write_bytes(victim.read_bytes() + b"\x00")
    # A genuinely signed image with one file more: a lib/device.py that the
    # device would import before the signed lib/device.mpy.
    strayed = d / "img-0.2.0-stray"
    shutil.copytree(good, strayed)
    (strayed / "lib" / "device.py").write_text("print('not signed')\n")
    # A release that fixes a security hole: security version 2.
    secure = build("unix", d / "img-0.5.0", "0.5.0", security=2)
    sign(secure, d / "key.pem")
    return {"pub": pub, "good": good, "forged": forged, "broken": broken,
            "other_board": other_board, "tampered": tampered, "strayed": strayed,
            "secure": secure, "key": d / "key.pem"}


_FRAGMENTED_END_CHECK = """
import sys, gc, json
sys.path.insert(0, sys.argv[1] + "/lib")
sys.path.append(sys.argv[1] + "/bootloader")  # a device's is at its root
import ota
# Fill the heap with 400-byte blocks, then free every other one: ~16K free, in
# holes, as after a long image transfer.
keep = [None] * 300
n = 0
try:
    while n < 300:
        keep[n] = bytearray(400)
        n += 1
except MemoryError:
    pass
for i in range(0, n, 2):
    keep[i] = None
gc.collect()
try:
    with open(sys.argv[1] + "/manifest.json") as f:
        print("json.load", len(json.load(f)["files"]))
except MemoryError as e:
    print("json.load", e)
with open(sys.argv[1] + "/manifest.json") as f:
    c = 0
    for e in ota._entries(f):
        c += 1
print(c)
print(ota._check(sys.argv[1]))
print(ota._check(sys.argv[2]))
"""


def test_the_updaters_end_check_reads_the_manifest_as_the_build_writes_it(
        images: dict[str, Any], tmp_path: Path) -> None:
    """lib/ota.py reads manifest.json line by line: in a heap cut into holes,
    where json.load fails for its dict's 752-byte table (as it did in CI after
    a 50K transfer), the line reader lists exactly the build's files, passes
    the good image and names the tampered file."""
    script = tmp_path / "end_check.py"
    script.write_text(_FRAGMENTED_END_CHECK)
    r = subprocess.run([micropython_path(), "-X", "heapsize=48K", str(script),
                        str(images["good"]), str(images["tampered"])],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    files = json.loads((images["good"] / "manifest.json").read_text())["files"]
    victim = next(p for p in sorted(images["tampered"].rglob("*.mpy")))
    out = r.stdout.splitlines()
    assert out[0].startswith("json.load memory allocation failed"), out
    assert out[1:] == [str(len(files)), "None", "hash " + victim.relative_to(images["tampered"]).as_posix()]


def _boot_record(flash: Path) -> list[str]:
    rec = flash / "boot_record"
    # No record yet is the bootloader's default: slot a, nothing pending.
    return rec.read_text().split() if rec.exists() else ["a", "-", "0", "0", "-"]


async def _push(town: Town, image: Path, devices: list[str], wave: int) -> dict[str, Any]:
    edge = f"http://127.0.0.1:{town.http_port}"
    r: dict[str, Any] = await asyncio.to_thread(push, edge, image, devices, wave, 60.0, 0.2,
                                                None, town.token)
    return r


async def _rent_works(town: Town) -> None:
    """Every dock still takes a rental and a return, end to end."""
    edge = town.edge
    assert edge is not None
    for d in town.docks:
        before = edge.metrics.get("events.stored")
        if not any(s.present and s.latched for s in d.emulator.slots):
            assert town.give_back(d, "0B000000FF") is not None
            await until(lambda b=before: edge.metrics.get("events.stored") > b, 15)
            await asyncio.sleep(0.3)  # the bolt closes on the returned bike
            before = edge.metrics.get("events.stored")
        bike = await town.rent(d)
        assert bike is not None, f"{d.dev}: no bike to rent"
        await until(lambda b=before: edge.metrics.get("events.stored") > b, 15)
        assert town.give_back(d, bike) is not None
        await until(lambda b=before: edge.metrics.get("events.stored") > b + 1, 15)


@needs_mosquitto
def test_rollout_updates_a_serial_and_an_mqtt_dock(images: dict[str, Any],
                                                    tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=4, mqtt_share=0.5, seed=5,
                        ota_key=images["pub"], ota_confirm_s=20) as town:
            await town.wait_online()
            assert {d.link for d in town.docks} == {"serial", "mqtt"}
            devs = [d.dev for d in town.docks]
            r = await _push(town, images["good"], devs, wave=1)
            assert r["state"] == "done", r
            assert edge_fw(town) == {d: "0.2.0" for d in devs}
            assert town.edge is not None  # the image is let go when the rollout ends
            assert all(not x.image.files for x in town.edge.ota.rollouts.values())
            for d in town.docks:
                # Into update mode, the verify pass, the trial boot: three resets.
                assert d.restarts == 3
                # Confirmed: the marker the bootloader turns into the record next boot.
                assert _boot_record(d.flash)[:3] == ["a", "b", "2"]
                assert (d.flash / "ota_confirmed").exists()
                log = d.log_path.read_text()
                assert "image in slot_b verified" in log and "MemoryError" not in log
            # A power cut now: the device comes back on the new image, for good.
            d = town.docks[0]
            assert d.proc is not None
            d.proc.kill()
            await until(lambda: d.restarts == 4 and _boot_record(d.flash)[0] == "b", 10)
            assert _boot_record(d.flash) == ["b", "-", "0", "0", "update_confirmed"]
            await asyncio.sleep(1)
            await town.wait_online()
            assert edge_fw(town)[d.dev] == "0.2.0"
            assert "not confirmed" not in d.log_path.read_text()
            await _rent_works(town)
    run(main())


def edge_fw(town: Town) -> dict[str, str]:
    assert town.edge is not None
    return {d.dev: town.edge.registry.devices[d.dev].fw for d in town.docks}


async def _push_refused(town: Town, image: Path, why: str) -> None:
    """One dock, one image it must refuse: the rollout stops with `why` in the error."""
    d = town.docks[0]
    r = await _push(town, image, [d.dev], wave=1)
    p = r["devices"][d.dev]
    assert r["state"] == "stopped" and p["state"] == "failed", r
    assert why in p["error"], p


async def _still_on_the_old_image(town: Town) -> None:
    """After a refusal: the boot record points at slot a, nothing pending; the
    dock comes back on 0.1.0 and rents."""
    d = town.docks[0]
    assert _boot_record(d.flash)[:3] == ["a", "-", "0"]
    await town.wait_online()
    assert edge_fw(town)[d.dev] == "0.1.0"
    await _rent_works(town)


def test_an_image_with_a_bad_signature_is_refused(images: dict[str, Any],
                                                  tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=6,
                        ota_key=images["pub"]) as town:
            await town.wait_online()
            d = town.docks[0]
            await _push_refused(town, images["forged"], "refused:signature")
            assert edge_fw(town)[d.dev] == "0.1.0"
            assert "refused:signature; staying on slot_a" in d.log_path.read_text()
            assert town.edge is not None
            assert town.edge.registry.devices[d.dev].ota == "refused:signature"
            await _still_on_the_old_image(town)
    run(main())


def test_an_image_with_a_changed_file_or_for_another_board_is_refused(
        images: dict[str, Any], tmp_path: Path) -> None:
    """A file changed after signing: the device's end check finds its hash wrong,
    and the edge sends the device straight back to its running image (update
    mode does not rent). An image for the ESP32-S3: the bootloader's verify
    pass refuses it. Both times the dock stays on 0.1.0 and keeps renting."""
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=9,
                        ota_key=images["pub"]) as town:
            await town.wait_online()
            d = town.docks[0]
            await _push_refused(town, images["tampered"],
                                "image check failed on the device: hash ")
            await until(lambda: d.restarts == 2, 15)  # into update mode, and straight out
            await _still_on_the_old_image(town)

            await _push_refused(town, images["other_board"], "refused:board")
            assert _boot_record(d.flash)[4] == "refused:board"
            assert "refused:board; staying on slot_a" in d.log_path.read_text()
            await _still_on_the_old_image(town)
    run(main())


def test_a_new_image_that_is_never_heard_rolls_back_and_stops_the_rollout(
        images: dict[str, Any], tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=4, mqtt_share=0, seed=7,
                        ota_key=images["pub"], ota_confirm_s=5) as town:
            await town.wait_online()
            first, second = town.docks
            r = await _push(town, images["broken"], [first.dev, second.dev], wave=1)
            assert r["state"] == "stopped" and r["wave"] == 1
            p = r["devices"][first.dev]
            assert p["state"] == "failed" and "rolled_back" in p["error"], p
            assert r["devices"][second.dev]["state"] == "skipped"
            assert second.restarts == 0  # the second wave never started
            assert _boot_record(first.flash)[:3] == ["a", "-", "0"]
            assert _boot_record(first.flash)[4] == "rolled_back"
            log = first.log_path.read_text()
            assert "not confirmed: rolling back" in log
            assert edge_fw(town) == {first.dev: "0.1.0", second.dev: "0.1.0"}
            await town.wait_online()
            await _rent_works(town)
    run(main())


def test_a_kiosk_is_updated_over_its_serial_line_and_still_answers_a_swipe(
        images: dict[str, Any], tmp_path: Path) -> None:
    """Update mode on a 64K kiosk: the image arrives over the kiosk's serial
    link, the bootloader verifies it, the edge confirms it, and a villager's
    swipe still shows the payments."""
    import random

    from hardware.idcard_emulator import fictional_card
    from tests.kiosk.test_swipe import RECORDS, _swipe

    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=2, mqtt_share=0, seed=12, kiosks=1,
                        ota_key=images["pub"], ota_confirm_s=20) as town:
            await town.wait_online()
            k = town.kiosks[0]
            assert town.edge is not None
            r = await _push(town, images["good"], [k.dev], wave=1)
            assert r["state"] == "done", r
            assert town.edge.registry.devices[k.dev].fw == "0.2.0"
            assert k.restarts == 3  # update mode, verify pass, trial boot
            assert _boot_record(k.flash)[:3] == ["a", "b", "2"]
            log = k.log_path.read_text()
            assert "image in slot_b verified" in log and "MemoryError" not in log
            await town.wait_online()
            card = fictional_card(random.Random(8))
            await town.villager(card, RECORDS)
            assert await _swipe(town, k, card) == "惠民资金查询结果"
    run(main())


_STAGED_CHECKS = """
import sys
sys.path[:0] = ["slot_a/lib", "bootloader"]
import ota, verify_image
print(verify_image._check("slot_b", "slot_a"))
print(ota._check("slot_b"))
print(verify_image._check("slot_b", "slot_a"))
"""


def _stage(tmp: Path, images: dict[str, Any], staged: Path, floor: int | None) -> Path:
    """A device's flash with the good image active and `staged` in slot_b."""
    flash = tmp / "flash"
    shutil.copytree(images["good"], flash / "slot_a")
    shutil.copytree(images["good"] / "bootloader", flash / "bootloader")
    shutil.copytree(staged, flash / "slot_b")
    (flash / "config.json").write_text(json.dumps({"ota_key": images["pub"]}))
    if floor is not None:
        (flash / "ota_floor").write_text(str(floor))
    return flash


def test_a_signed_image_with_an_extra_file_is_refused_by_updater_and_bootloader(
        images: dict[str, Any], tmp_path: Path) -> None:
    """Under MicroPython, on a device's flash: the bootloader's verify pass
    refuses the staged image for its unlisted lib/device.py; the updater's end
    check names it and removes it, after which the same image verifies."""
    flash = _stage(tmp_path, images, images["strayed"], None)
    r = subprocess.run([micropython_path(), "-X", f"heapsize={HEAP}", "-c", _STAGED_CHECKS],
                       capture_output=True, text=True, timeout=60, cwd=flash)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split("\n")[:3] == ["refused:stray", "stray lib/device.py", "None"], r.stdout
    assert not (flash / "slot_b" / "lib" / "device.py").exists()


def test_the_edge_refuses_to_forward_files_the_manifest_does_not_list(
        images: dict[str, Any]) -> None:
    from edge.core.errors import Rejected
    from edge.app.ota import Image
    from tools.ota import image_upload

    import base64

    upload = image_upload(images["good"])
    Image.from_upload(upload)
    # The CLI sends only listed files; a hand-made upload adds one.
    upload["files"]["lib/device.py"] = base64.b64encode(
        (images["strayed"] / "lib" / "device.py").read_bytes()).decode()
    with pytest.raises(Rejected, match="does not list.*lib/device.py"):
        Image.from_upload(upload)


def test_an_image_below_the_security_floor_is_refused(images: dict[str, Any],
                                                      tmp_path: Path) -> None:
    """The floor comes from a confirmed image (ota_floor): a genuinely signed
    older image is refused by the verify pass; at the floor it passes."""
    flash = _stage(tmp_path / "low", images, images["good"], 2)
    r = subprocess.run([micropython_path(), "-X", f"heapsize={HEAP}", "-c", _STAGED_CHECKS],
                       capture_output=True, text=True, timeout=60, cwd=flash)
    assert r.stdout.split("\n")[0] == "refused:rollback", r.stdout + r.stderr
    flash = _stage(tmp_path / "at", images, images["secure"], 2)
    r = subprocess.run([micropython_path(), "-X", f"heapsize={HEAP}", "-c", _STAGED_CHECKS],
                       capture_output=True, text=True, timeout=60, cwd=flash)
    assert r.stdout.split("\n")[0] == "None", r.stdout + r.stderr


def test_a_damaged_floor_or_a_manifest_without_security_refuses(images: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    """Fail closed: a floor that cannot be read does not reopen every old image, and a
    signed manifest that does not say its security version is not taken as 0."""
    flash = _stage(tmp_path / "damaged", images, images["secure"], None)
    (flash / "ota_floor").write_text("2\x00garbage")
    r = subprocess.run([micropython_path(), "-X", f"heapsize={HEAP}", "-c", _STAGED_CHECKS],
                       capture_output=True, text=True, timeout=60, cwd=flash)
    assert r.stdout.split("\n")[0] == "refused:floor", r.stdout + r.stderr
    unsaid = tmp_path / "img-unsaid"
    shutil.copytree(images["good"], unsaid)
    man = json.loads((unsaid / "manifest.json").read_text())
    del man["security"]
    (unsaid / "manifest.json").write_text(json.dumps(man))
    sign(unsaid, images["key"])
    flash = _stage(tmp_path / "unsaid", images, unsaid, None)
    r = subprocess.run([micropython_path(), "-X", f"heapsize={HEAP}", "-c", _STAGED_CHECKS],
                       capture_output=True, text=True, timeout=60, cwd=flash)
    assert r.stdout.split("\n")[0] == "refused:security", r.stdout + r.stderr


def test_the_simulators_install_writes_the_floor_from_the_first_boot(
        images: dict[str, Any], tmp_path: Path) -> None:
    install(images["secure"], tmp_path / "flash")
    assert (tmp_path / "flash" / "ota_floor").read_text() == "2"
    install(images["good"], tmp_path / "flash")  # never lowered
    assert (tmp_path / "flash" / "ota_floor").read_text() == "2"


def test_after_a_security_update_is_confirmed_a_downgrade_is_refused(
        images: dict[str, Any], tmp_path: Path) -> None:
    """End to end: 0.5.0 (security 2) confirmed raises the dock's floor; the
    older, genuinely signed 0.2.0 (security 1) is then refused:rollback."""
    async def main() -> None:
        async with Town(tmp_path, docks=1, slots=4, mqtt_share=0, seed=5,
                        ota_key=images["pub"]) as town:
            await town.wait_online()
            d = town.docks[0]
            r = await _push(town, images["secure"], [d.dev], wave=1)
            assert r["devices"][d.dev]["state"] == "confirmed", r
            # The confirm takes effect at the next boot (the bootloader owns the
            # record): the next push's reboot into update mode, before any verify.
            await _push_refused(town, images["good"], "refused:rollback")
            assert (d.flash / "ota_floor").read_text() == "2"
            await town.wait_online()
            assert edge_fw(town)[d.dev] == "0.5.0"
            await _rent_works(town)
    run(main())


def test_a_torn_boot_record_boots_the_active_slot(images: dict[str, Any], tmp_path: Path) -> None:
    """A boot record emptied by a power cut mid-write (as records were written
    before they were renamed into place) must not stop every boot: the
    bootloader starts slot a. Records are now written aside and renamed."""
    flash = _stage(tmp_path, images, images["good"], None)
    (flash / "boot_record").write_text("")
    code = ("import sys\nsys.path[:0] = ['bootloader']\nimport slot\n"
            "r, f, t = slot.choose()\nprint(f, t)\nslot.put(['b', '-', '0', '0', 'x'])\n")
    r = subprocess.run([micropython_path(), "-X", f"heapsize={HEAP}", "-c", code],
                       capture_output=True, text=True, timeout=60, cwd=flash)
    assert r.stdout.split() == ["slot_a", "False"], r.stdout + r.stderr
    assert (flash / "boot_record").read_text() == "b - 0 0 x"
    assert not (flash / "boot_record.new").exists()
