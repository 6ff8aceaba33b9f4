# Serial HMI display (DWIN DGUS style; frames in wire.hmi) and the UART voice
# module (SYN6288 style). Both only write: what to show, what to say, one after
# the other, from one frame buffer: a screen and its prompt allocate nothing.
from wire import hmi


class Display:
    def __init__(self, uart, vp):
        """vp: the display project's text addresses, (title, (line, ...),
        (right-aligned column, ...), footer)."""
        self.uart = uart
        self.vp = vp
        self._buf = bytearray(258)
        self._mv = memoryview(self._buf)
        self._countdown = None  # the shown footer, when it counts down (a %d in it)
        self._left = None  # the seconds it shows

    async def show(self, screen, left_s=None):
        """screen: (page, title, lines, footer, ...) as apps/kiosk/screens.py makes
        them; a line is (left, right): the right part goes to the right-aligned column.
        left_s: the seconds a counting-down footer shows."""
        w = self.uart.write
        b = self._buf
        mv = self._mv
        title_vp, line_vps, right_vps, footer_vp = self.vp
        lines = screen[2]
        await w(mv[:hmi.dwin_text(b, title_vp, screen[1])])
        for i in range(len(line_vps)):
            left, right = lines[i] if i < len(lines) else ("", "")
            await w(mv[:hmi.dwin_text(b, line_vps[i], left)])
            await w(mv[:hmi.dwin_text(b, right_vps[i], right)])
        text = screen[3]
        self._countdown = text if "%d" in text else None
        self._left = None
        await self.count(left_s)
        if self._countdown is None:
            await w(mv[:hmi.dwin_text(b, footer_vp, text)])
        await w(mv[:hmi.dwin_page(b, screen[0])])

    async def count(self, left_s):
        """A counting-down footer shows left_s seconds (rewritten alone, when it
        changed); anything else is left as it is."""
        if self._countdown is None or left_s is None or left_s == self._left:
            return
        self._left = left_s
        await self.uart.write(
            self._mv[:hmi.dwin_text(self._buf, self.vp[3], self._countdown % left_s)])


class Voice:
    def __init__(self, uart, display):
        self.uart = uart
        self._buf = display._buf  # speaking follows showing: one frame buffer serves both
        self._mv = display._mv

    async def say(self, text):
        await self.uart.write(self._mv[:hmi.tts_say(self._buf, text)])
