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

    async def show(self, screen):
        """screen: (page, title, lines, footer, ...) as apps/kiosk/screens.py makes
        them; a line is (left, right): the right part goes to the right-aligned column."""
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
        await w(mv[:hmi.dwin_text(b, footer_vp, screen[3])])
        await w(mv[:hmi.dwin_page(b, screen[0])])


class Voice:
    def __init__(self, uart, display):
        self.uart = uart
        self._buf = display._buf  # speaking follows showing: one frame buffer serves both
        self._mv = display._mv

    async def say(self, text):
        await self.uart.write(self._mv[:hmi.tts_say(self._buf, text)])
