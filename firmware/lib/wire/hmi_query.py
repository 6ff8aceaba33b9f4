# Questions a host asks its display and voice module to learn they are there,
# and the answers (sans-IO). Only the self-test (lib/selftest.py) loads this:
# the kiosk app only writes to these modules (wire/hmi.py).
#
# Display, DWIN DGUS style: 5A A5 04 83 VP_H VP_L N reads N words from VP; the
# screen answers 5A A5 LEN 83 VP_H VP_L N and the 2N data bytes. VP 0x0014 is
# the system register holding the page on show.
# Voice, SYN6288 style: FD 00 02 21 DE asks for the module's state; it answers
# one byte, 4F idle or 4E speaking.

PAGE_NOW = 0x0014
TTS_STATUS = b"\xfd\x00\x02\x21\xde"
TTS_IDLE = 0x4F
TTS_BUSY = 0x4E


def dwin_read(vp, n):
    return bytes((0x5A, 0xA5, 4, 0x83, vp >> 8, vp & 0xFF, n))


def dwin_answer(b, vp):
    """The words of the first read answer for vp in b, or None if b holds none."""
    i = 0
    while True:
        i = b.find(b"\x5a\xa5", i)
        if i < 0 or len(b) < i + 7:
            return None
        n = b[i + 2]
        if len(b) < i + 3 + n:
            return None
        if (n >= 4 and b[i + 3] == 0x83 and (b[i + 4] << 8 | b[i + 5]) == vp
                and n == 4 + 2 * b[i + 6]):
            return [b[i + 7 + 2 * k] << 8 | b[i + 8 + 2 * k] for k in range(b[i + 6])]
        i += 2
