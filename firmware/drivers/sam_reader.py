# The ID-card security module on a UART: find, select, read (wire.idcard has
# the frames). Every exchange has a timeout; a card lifted mid-read shows up
# as a partial frame followed by silence and is reported as "pulled". The
# decoder keeps only the text part of a read answer: the 1K photo streams past.
import asyncio

from wire import idcard


class ReadError(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason  # "pulled", "unreadable", "module"


class SamReader:
    def __init__(self, uart):
        self.uart = uart
        self.decoder = idcard.SamDecoder(idcard.TEXT_KEEP)
        self._buf = bytearray(64)
        self._mv = memoryview(self._buf)
        self._got = 0  # bytes in _buf not yet fed to the decoder
        self._off = 0

    async def _xfer(self, cmd, timeout=400):  # ms
        self.decoder.next()  # a stray answer from an earlier, timed-out exchange
        self._got = self._off = 0
        await self.uart.write(idcard.command(cmd))
        dec = self.decoder
        mv = self._mv
        while True:
            if self._off < self._got:
                self._off += dec.feed(mv[self._off:self._got])
                body = dec.next()
                if body is not None:
                    return body
                continue
            try:
                self._got = await asyncio.wait_for_ms(self.uart.readinto(self._buf), timeout)
            except asyncio.TimeoutError:
                partial = dec.pending()
                dec.gap()
                raise ReadError("pulled" if partial else "unreadable")
            self._off = 0

    async def healthy(self):
        try:
            return (await self._xfer(idcard.STATUS))[2] == idcard.OK
        except ReadError:
            return False

    async def present(self):
        """True or False as the module answers; None when it did not answer
        (apps/kiosk/flow.py keeps the screen as it is then)."""
        try:
            return (await self._xfer(idcard.FIND))[2] == idcard.FIND_OK
        except ReadError:
            return None

    async def read_text(self):
        """The 256-byte text block of the card on the reader (the steps and
        what their answers mean: wire.idcard READ_STEPS, step_failed)."""
        for cmd, ms, again in idcard.READ_STEPS:
            while True:
                try:
                    body = await self._xfer(cmd, ms)
                    break
                except ReadError as e:
                    if e.reason != "unreadable" or not again:
                        raise
                    again -= 1
            why = idcard.step_failed(cmd, body[2])
            if why:
                raise ReadError(why)
        try:
            return idcard.read_text(body, self.decoder.size)
        except ValueError:
            raise ReadError("unreadable")
