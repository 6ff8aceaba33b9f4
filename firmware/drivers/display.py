# Serial HMI display (DWIN DGUS style; frames in wire.hmi) and the UART voice
# module (SYN6288 style). Both only write: what to show, what to say.
from wire import hmi


class Display:
    def __init__(self, uart):
        self.uart = uart

    async def show(self, page, title, lines, footer, line_vps, title_vp, footer_vp):
        w = self.uart.write
        await w(hmi.dwin_text(title_vp, title))
        for i in range(len(line_vps)):
            await w(hmi.dwin_text(line_vps[i], lines[i] if i < len(lines) else ""))
        await w(hmi.dwin_text(footer_vp, footer))
        await w(hmi.dwin_page(page))


class Voice:
    def __init__(self, uart):
        self.uart = uart

    async def say(self, text):
        await self.uart.write(hmi.tts_say(text))
