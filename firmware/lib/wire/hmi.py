# Frames the kiosk writes to its serial display and voice module (sans-IO).
# The modules' side (decoding what they receive) is wire/hmi_module.py, used by
# the emulators; a kiosk never loads it. Frames are written into the caller's
# buffer (no allocation per screen); text that does not fit one frame is cut.
#
# Display, DWIN DGUS style: 5A A5 | LEN | 82 | VP_H VP_L | data; LEN counts the
# bytes after itself (one byte, so at most 255). Text goes to a VP address as
# UTF-16BE ended by FF FF; the page register is VP 0x0084 (5A 01 00 <page>).
# Voice, SYN6288 style: FD | LEN_H LEN_L | 01 (speak) | 03 (UTF-16BE) | text |
# XOR of every byte before it; LEN counts the bytes after itself. The module
# takes at most 200 bytes of text per frame.


def utf16be(buf, i, s, end):
    """Write s from buf[i] as UTF-16BE, stopping before buf[end]; returns the new i.
    Decodes s's UTF-8 by hand: taking a str's characters one by one interns each
    of them on MicroPython, for good. Outside the BMP becomes U+FFFD."""
    u = s.encode()
    j = 0
    n = len(u)
    while j < n and i + 2 <= end:
        c = u[j]
        if c < 0x80:
            j += 1
        elif c < 0xE0:
            c = ((c & 0x1F) << 6) | (u[j + 1] & 0x3F)
            j += 2
        elif c < 0xF0:
            c = ((c & 0x0F) << 12) | ((u[j + 1] & 0x3F) << 6) | (u[j + 2] & 0x3F)
            j += 3
        else:
            c = 0xFFFD
            j += 4
        buf[i] = c >> 8
        buf[i + 1] = c & 0xFF
        i += 2
    return i


def dwin_text(buf, vp, s):
    """A text frame for VP address vp into buf; returns its length."""
    buf[0] = 0x5A
    buf[1] = 0xA5
    buf[3] = 0x82
    buf[4] = vp >> 8
    buf[5] = vp & 0xFF
    i = utf16be(buf, 6, s, min(len(buf), 258) - 2)
    buf[i] = 0xFF
    buf[i + 1] = 0xFF
    buf[2] = i - 1  # LEN: the bytes after itself
    return i + 2


def dwin_page(buf, page):
    """A page switch frame into buf; returns its length."""
    buf[0:10] = b"\x5a\xa5\x07\x82\x00\x84\x5a\x01\x00\x00"
    buf[9] = page
    return 10


def tts_say(buf, s):
    """A speak frame into buf; returns its length."""
    buf[0] = 0xFD
    buf[3] = 0x01
    buf[4] = 0x03
    i = utf16be(buf, 5, s, min(len(buf), 206) - 1)
    n = i - 2  # LEN: the bytes after itself, XOR included
    buf[1] = n >> 8
    buf[2] = n & 0xFF
    x = 0
    for j in range(i):
        x ^= buf[j]
    buf[i] = x
    return i + 1
