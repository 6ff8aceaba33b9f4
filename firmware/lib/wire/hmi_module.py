# The serial display's and voice module's side of wire/hmi.py and
# wire/hmi_query.py: decoders for the frames a kiosk sends, and the answers to
# its questions (the emulators in hardware/ run this).


def from_utf16be(b):
    return "".join([chr((b[i] << 8) | b[i + 1]) for i in range(0, len(b) - 1, 2)])


class DwinDecoder:
    """Emulator side: feed bytes, next() -> ("text", vp, str), ("page", n),
    ("read", vp, words) or None."""

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
            if n == 4 and body[0] == 0x83:
                return ("read", (body[1] << 8) | body[2], body[3])
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
    """Emulator side: feed bytes, next() -> ("say", text), ("status",) or None."""

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
            if x != frame[-1] or n < 2 or frame[3] not in (0x01, 0x21):
                self.bad += 1
                b = self._b
                continue
            if frame[3] == 0x21:
                return ("status",)
            return ("say", from_utf16be(frame[5:-1]))


def dwin_answer_frame(vp, words):
    """The screen's answer to a read of len(words) words from vp."""
    out = bytearray((0x5A, 0xA5, 4 + 2 * len(words), 0x83, vp >> 8, vp & 0xFF, len(words)))
    for w in words:
        out.append(w >> 8)
        out.append(w & 0xFF)
    return bytes(out)
