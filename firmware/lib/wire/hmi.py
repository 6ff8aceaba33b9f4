# Frames for the kiosk's serial display and voice module (sans-IO, shared by
# the kiosk drivers and the emulators).
#
# Display, DWIN DGUS style: 5A A5 | LEN | 82 | VP_H VP_L | data; LEN counts the
# bytes after itself. Text goes to a VP address as UTF-16BE ended by FF FF;
# the page register is VP 0x0084 (5A 01 00 <page>).
# Voice, SYN6288 style: FD | LEN_H LEN_L | 01 (speak) | 03 (UTF-16BE) | text |
# XOR of every byte before it; LEN counts the bytes after itself.


def utf16be(s):
    out = bytearray()
    for ch in s:
        c = ord(ch)
        out.append(c >> 8)
        out.append(c & 0xFF)
    return out


def from_utf16be(b):
    return "".join([chr((b[i] << 8) | b[i + 1]) for i in range(0, len(b) - 1, 2)])


def dwin_text(vp, s):
    data = utf16be(s) + b"\xff\xff"
    return bytes(b"\x5a\xa5" + bytes((len(data) + 3, 0x82, vp >> 8, vp & 0xFF)) + data)


def dwin_page(page):
    return bytes((0x5A, 0xA5, 0x07, 0x82, 0x00, 0x84, 0x5A, 0x01, 0x00, page))


def tts_say(s):
    data = bytearray(b"\xfd\x00\x00\x01\x03") + utf16be(s)
    n = len(data) - 3 + 1
    data[1] = n >> 8
    data[2] = n & 0xFF
    x = 0
    for c in data:
        x ^= c
    data.append(x)
    return bytes(data)


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
