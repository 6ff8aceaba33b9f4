"""Resident ID cards through a USB ID reader on the Pi: the same security-module
frames as the kiosk's UART (wire.idcard), over USB serial with pyserial. Reads
the text block, checks card type, number and validity, and hands back only the
lookup token and the masks; the number and name stay in this function."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import serial_asyncio_fast
from wire import idcard


class IdReadError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # no_card, pulled, unreadable, module, card_type, invalid, expired


@dataclass(frozen=True)
class IdCardRead:
    token: str
    masked_number: str
    masked_name: str


class UsbIdReader:
    def __init__(self, port: str, baud: int = 115200) -> None:
        self.port = port
        self.baud = baud
        self._r: asyncio.StreamReader | None = None
        self._w: asyncio.StreamWriter | None = None
        self.dec = idcard.SamDecoder(idcard.TEXT_KEEP)  # the photo is not kept
        self._pending: list[bytes] = []

    async def open(self) -> None:
        self._r, self._w = await serial_asyncio_fast.open_serial_connection(
            url=self.port, baudrate=self.baud)

    async def close(self) -> None:
        if self._w is not None:
            self._w.close()

    async def _xfer(self, cmd: bytes, wait_s: float = 0.5) -> bytes:
        assert self._r is not None and self._w is not None, "open() first"
        self._pending.clear()  # stray answers to an earlier, timed-out command
        self._w.write(idcard.command(cmd))
        await self._w.drain()
        while not self._pending:
            try:
                async with asyncio.timeout(wait_s):
                    data = await self._r.read(2048)
            except TimeoutError:
                partial = self.dec.pending()
                self.dec.gap()
                raise IdReadError("pulled" if partial else "unreadable") from None
            self._pending.extend(self.dec.decode(data))
        return self._pending.pop(0)

    async def read_card(self, region_key: bytes) -> IdCardRead:
        if (await self._xfer(idcard.FIND))[2] != idcard.FIND_OK:
            raise IdReadError("no_card")
        body = b""
        # The steps and what their answers mean, as the kiosk's driver reads them
        # (wire.idcard READ_STEPS, step_failed): one rule, two readers.
        for cmd, ms, again in idcard.READ_STEPS:
            for attempt in range(again + 1):
                try:
                    body = await self._xfer(cmd, ms / 1000)
                    break
                except IdReadError as e:
                    if e.reason != "unreadable" or attempt == again:
                        raise
            why = idcard.step_failed(cmd, body[2])
            if why:
                raise IdReadError(why)
        try:
            text = idcard.read_text(body, self.dec.size)
        except ValueError as exc:
            raise IdReadError("unreadable") from exc
        name, number, valid_to, resident = idcard.person(text)
        if not resident:
            raise IdReadError("card_type")
        if idcard.check_id(number) is not None:
            raise IdReadError("invalid")
        if idcard.expired(valid_to, time.strftime("%Y%m%d")):
            raise IdReadError("expired")
        return IdCardRead(idcard.token(region_key, number), idcard.mask_id(number),
                          idcard.mask_name(name))
