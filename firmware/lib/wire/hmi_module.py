# The serial display's and voice module's side of wire/hmi.py: decoders for
# the frames a kiosk sends (the emulators in hardware/ run this).


def from_utf16be(b):
    return "".join([chr((b[i] << 8) | b[i + 1]) for i in range(0, len(b) - 1, 2)])


class DwinDecoder:
    """Emulator side: feed bytes, next() -> ("text", vp, str) or ("page", n) or None."""

    def __init__(self):
        self._b = bytearray()
        self.bad = 0

    def feed(self, data):
        self._b += data

    def next(self):
        b = self._b
        while True:
            i = b.find(b"\x5a\xa5")
            if i < 0:
                self._b = b = b[-1:]
                return None
            b = self._b = b[i:]
            if len(b) < 3 or len(b) < 3 + b[2]:
                return None
            n = b[2]
            body = bytes(b[3:3 + n])
            self._b = b[3 + n:]
            if n < 3 or body[0] != 0x82:
                self.bad += 1
                b = self._b
                continue
            vp = (body[1] << 8) | body[2]
            if vp == 0x0084 and len(body) == 7:
                return ("page", body[6])
            data = body[3:]
            if data[-2:] == b"\xff\xff":
                data = data[:-2]
            return ("text", vp, from_utf16be(data))


class TtsDecoder:
    """Emulator side: feed bytes, next() -> the text to speak, or None."""

    def __init__(self):
        self._b = bytearray()
        self.bad = 0

    def feed(self, data):
        self._b += data

    def next(self):
        b = self._b
        while True:
            i = b.find(b"\xfd")
            if i < 0:
                self._b = bytearray()
                return None
            b = self._b = b[i:]
            if len(b) < 3:
                return None
            n = (b[1] << 8) | b[2]
            if len(b) < 3 + n:
                return None
            frame = bytes(b[:3 + n])
            self._b = b[3 + n:]
            x = 0
            for c in frame[:-1]:
                x ^= c
            if x != frame[-1] or n < 3 or frame[3] != 0x01:
                self.bad += 1
                b = self._b
                continue
            return from_utf16be(frame[5:-1])
