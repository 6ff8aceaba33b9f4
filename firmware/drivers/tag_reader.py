# 125 kHz bike-tag readers (RDM6300 style), one per slot, reached through the
# HAL's tag port (a multiplexed UART on a board, bus channels on unix). The
# frame format lives in wire.rdm6300 (shared with the emulator); this driver
# only moves bytes into one small parser per slot.
from wire.rdm6300 import TagParser


class TagReaders:
    def __init__(self, port, n, on_tag):
        self.port = port
        self.on_tag = on_tag
        self.parsers = [TagParser() for _ in range(n)]

    def bad_frames(self):
        return sum([p.bad for p in self.parsers])

    async def run(self):
        parsers = self.parsers
        while True:
            slot, data = await self.port.read()
            if 0 <= slot < len(parsers):
                p = parsers[slot]
                for c in data:
                    tag = p.feed(c)
                    if tag is not None:
                        self.on_tag(slot, tag)
