# 125 kHz bike-tag readers (RDM6300 style), one per slot, reached through the
# HAL's tag port (a multiplexed UART on a board, bus channels on unix). The
# frame format lives in wire.rdm6300 (shared with the emulator); this driver
# only moves bytes into the parser.
from wire.rdm6300 import TagParser


class TagReaders:
    def __init__(self, port, n, on_tag):
        self.port = port
        self.n = n
        self.on_tag = on_tag
        self.parser = TagParser(n)

    async def run(self):
        p = self.parser
        while True:
            slot, data = await self.port.read()
            if 0 <= slot < self.n:
                for c in data:
                    tag = p.feed(slot, c)
                    if tag is not None:
                        self.on_tag(slot, tag)
