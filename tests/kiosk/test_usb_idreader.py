"""The Pi's USB ID reader path: the same module frames over a serial port
(pyserial), against the card-module emulator on the far end of a pty pair."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from wire import idcard

from edge.adapters.cardreader.idreader import IdReadError, UsbIdReader
from hardware.idcard_emulator import IdCardModule, fictional_card
from hardware.serial_line import SerialLine
from tests.conftest import run

KEY = b"k" * 32


def test_usb_reader_reads_validates_and_tokenises(tmp_path: Path) -> None:
    async def main() -> None:
        line = SerialLine()
        pi_end, module_end = line.open()
        module = IdCardModule(module_end)
        await module.start()
        reader = UsbIdReader(pi_end)
        await reader.open()
        try:
            with pytest.raises(IdReadError) as e:
                await reader.read_card(KEY)
            assert e.value.reason == "no_card"
            person = fictional_card(random.Random(4))
            module.place(person)
            got = await reader.read_card(KEY)
            assert got.token == idcard.token(KEY, person.id_number)
            assert got.masked_number == idcard.mask_id(person.id_number)
            # An answer lost on the line is asked for again, as the kiosk's driver does.
            module.fault = "lost_answer"
            again = await reader.read_card(KEY)
            assert again.token == got.token and module.fault is None
            module.place(fictional_card(random.Random(5), valid_to="20200101"))
            with pytest.raises(IdReadError) as e:
                await reader.read_card(KEY)
            assert e.value.reason == "expired"
            module.place(person)
            module.fault = "pull_mid_read"
            with pytest.raises(IdReadError) as e:
                await reader.read_card(KEY)
            assert e.value.reason == "pulled"
            module.fault = None
            module.place(person)
            assert (await reader.read_card(KEY)).token == got.token  # still works
        finally:
            await reader.close()
            await module.close()
            line.close()
    run(main())
