# The ID-card security module on a UART: find, select, read (wire.idcard has
# the frames). Every exchange has a timeout; a card lifted mid-read shows up
# as a partial frame followed by silence and is reported as "pulled".
import asyncio

from wire import idcard


class ReadError(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason  # "pulled", "unreadable", "module"


class SamReader:
    def __init__(self, uart):
        self.uart = uart
        self.dec = idcard.SamDecoder()
        self._buf = bytearray(128)

    async def _xfer(self, cmd, timeout_ms=400):
        await self.uart.write(idcard.command(cmd))
        mv = memoryview(self._buf)
        while True:
            body = self.dec.next()
            if body is not None:
                return body
            try:
                n = await asyncio.wait_for_ms(self.uart.readinto(self._buf), timeout_ms)
            except asyncio.TimeoutError:
                partial = self.dec._buf
                self.dec.gap()
                raise ReadError("pulled" if partial else "unreadable")
            self.dec.feed(mv[:n])

    async def healthy(self):
        try:
            return (await self._xfer(idcard.STATUS))[2] == idcard.OK
        except ReadError:
            return False

    async def present(self):
        try:
            return (await self._xfer(idcard.FIND))[2] == idcard.FIND_OK
        except ReadError:
            return False

    async def read_text(self):
        """The 256-byte text block of the card on the reader (the photo is dropped)."""
        body = await self._xfer(idcard.SELECT)
        if body[2] != idcard.OK:
            raise ReadError("pulled")
        body = await self._xfer(idcard.READ, 1500)
        if body[2] == idcard.E_SELFTEST:
            raise ReadError("module")
        if body[2] != idcard.OK:
            raise ReadError("unreadable")
        try:
            text, _ = idcard.split_read(body[3:])
        except ValueError:
            raise ReadError("unreadable")
        return text
