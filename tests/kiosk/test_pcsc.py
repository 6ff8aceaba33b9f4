"""Social-security cards on the real PC/SC stack: pcscd with the vpcd reader
driver, started here with a private reader configuration, pyscard on top, and
a virtual card of ours speaking vpcd's socket protocol. The reader code
handles 61xx and 6Cxx, validates the number, and hands back only the token
and masks; the number never reaches a log."""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wire import idcard

from hardware.idcard_emulator import fictional_card
from hardware.virtual_card import SocialSecurityCard
from tools.broker import free_port

PCSCD = shutil.which("pcscd") or ("/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None)
VPCD = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
pytestmark = pytest.mark.skipif(
    PCSCD is None or not VPCD.exists(),
    reason="pcscd or vsmartcard-vpcd not installed (./scripts/bootstrap.sh installs them)")
KEY = bytes(range(32))


def _readers() -> list[str]:
    from smartcard.System import readers

    try:
        return [str(r) for r in readers()]
    except Exception:  # no daemon yet
        return []


@pytest.fixture
def pcscd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True).returncode == 0:
        pytest.skip("a pcscd is already running (one per host: it always uses /run/pcscd)")
    # vpcd listens on a port picked here; between picking and listening another
    # process (an outgoing connection's ephemeral port, say) may take it:
    # "Address already in use" means try another, not a failed test.
    for attempt in range(5):
        port = free_port()
        conf = tmp_path / f"reader.conf.d.{attempt}"
        conf.mkdir()
        (conf / "vpcd").write_text(f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x{port:X}\n'
                                   f"LIBPATH {VPCD}\nCHANNELID 0x{port:X}\n")
        log = tmp_path / f"pcscd.{attempt}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(PCSCD), "-f", "-c", str(conf)], stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 10
            while not any("Virtual PCD" in r for r in _readers()):
                if "Address already in use" in log.read_text(errors="replace"):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"pcscd did not come up: {log.read_text()[-500:]}")
                time.sleep(0.05)
            else:
                yield port, log
                return
        finally:
            proc.terminate()
            proc.wait(5)
    pytest.fail("pcscd: every port tried was taken")


def _wait(pred, what: str, secs: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + secs
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _card_present() -> bool:
    from smartcard.System import readers

    try:
        c = readers()[0].createConnection()
        c.connect()
        c.disconnect()
        return True
    except Exception:
        return False


def test_social_security_card_read_on_real_pcscd(pcscd: tuple[int, Path]) -> None:
    from edge.adapters.cardreader.pcsc import CardReadError, read_social_card

    port, log = pcscd
    person = fictional_card(random.Random(11))
    card = SocialSecurityCard(person.id_number, person.name)
    with pytest.raises(CardReadError, match="no card"):
        read_social_card(KEY)
    card.insert(port)
    _wait(_card_present, "the card")
    got = read_social_card(KEY)
    assert got.token == idcard.token(KEY, person.id_number)
    assert got.masked_number == idcard.mask_id(person.id_number)
    assert got.masked_name == idcard.mask_name(person.name)
    assert card.apdus >= 6  # select (61xx + GET RESPONSE), select EF, 2 reads (6Cxx + resend)
    card.remove()
    # Right after removal a client may still see the card: wait for empty.
    _wait(lambda: not _card_present(), "the card to go")
    with pytest.raises(CardReadError):
        read_social_card(KEY)
    # A card whose number fails its check digit is refused, not looked up.
    bad = person.id_number[:17] + ("0" if person.id_number[17] != "0" else "1")
    wrong = SocialSecurityCard(bad, person.name)
    wrong.insert(port)
    _wait(_card_present, "the second card")
    with pytest.raises(CardReadError, match="check"):
        read_social_card(KEY)
    wrong.remove()
    text = log.read_bytes()
    assert person.id_number.encode() not in text and bad.encode() not in text


def test_bank_card_read_on_real_pcscd(pcscd: tuple[int, Path]) -> None:
    from edge.adapters.cardreader.pcsc import CardReadError, read_bank_card, read_social_card
    from hardware.virtual_card import BankCard

    port, log = pcscd
    pan = "6217000000001234567"
    card = BankCard(pan)
    card.insert(port)
    _wait(_card_present, "the bank card")
    got = read_bank_card(KEY)
    assert got.token == idcard.token(KEY, pan)
    assert got.masked_pan == "6217***********4567"
    with pytest.raises(CardReadError):  # not a social-security card
        read_social_card(KEY)
    card.remove()
    _wait(lambda: not _card_present(), "the card to go")
    assert pan.encode() not in log.read_bytes()
