# A seeded mutation loop for the device-side parsers, run under MicroPython
# in the device's heap (tests/fuzz/test_on_device.py): good frames and
# messages, mutated (bytes flipped, dropped, duplicated, spliced), fed to each
# parser. A parser may refuse them, never raise anything else, and the heap
# must not grow: the free heap after a collection at the end is compared with
# the free heap after the first tenth (warm-up). Prints "ok <iterations>
# <free after warm-up> <free at end>".
# Plain MicroPython: no typing, no f-strings beyond what the port has.
import gc
import random
import sys

import command_guard
from wire import (
    auth,
    hmi_query,
    idcard,
    idcard_module,
    kiosk_messages,  # noqa: F401
    message,
)
from wire.framing import KIND_DATA, FrameDecoder, encode_frame
from wire.link import Link
from wire.rdm6300 import TagParser

SEEDS = [
    encode_frame(KIND_DATA, 3, b'{"t":"ack","epoch":"e1","seq":4}'),
    b'{"t":"cmd","id":9,"op":"unlock","slot":2,"ctr":77,"mac":"00112233445566778899aabbccddeeff"}',
    b'{"t":"funds","id":5,"ok":true,"records":[["x",100,"2026-01-01","ok"]]}',
    '{"t":"state","dev":"d","boot":1,"n":2,"slots":"ELUF\u4e2d"}'.encode(),
    idcard_module.response(idcard.OK, bytes(16)),
    b"\x02" + b"0B0000000700" + b"\x03",
    b"\x5a\xa5\x06\x83\x10\x00\x01\x00\x05",
]


def mutate(rng, b):
    # (MicroPython's bytearray has no slice insertion or deletion: bytes are cut
    # and joined instead; this is the test, not the code under test.)
    for _ in range(rng.getrandbits(3) + 1):
        op = rng.getrandbits(2)
        i = rng.getrandbits(10) % (len(b) + 1)
        if op == 0 and b:
            i %= len(b)
            b = b[:i] + bytes((b[i] ^ (1 << rng.getrandbits(3)),)) + b[i + 1:]
        elif op == 1 and b:
            i %= len(b)
            b = b[:i] + b[i + 1:]
        elif op == 2:
            b = b[:i] + bytes((rng.getrandbits(8),)) + b[i:]
        else:
            j = rng.getrandbits(10) % (len(b) + 1)
            b = b[:i] + b[j:j + 8] + b[i:]
    return b


def run(n, seed):
    rng = random
    rng.seed(seed)
    key = auth.Key(b"k" * 32)
    guard = command_guard.CommandGuard("6b" * 32, "d1", "fuzz_ctr")
    dec = FrameDecoder(512)
    link = Link(max_payload=256)
    sam = idcard.SamDecoder(idcard.TEXT_KEEP)
    tags = TagParser(4)
    free0 = 0
    for k in range(n):
        if k == n // 10:
            # Measured from here: first uses allocate once (a parser's first
            # error, a dict's first growth); growth after that is a leak.
            gc.collect()
            free0 = gc.mem_free()
        data = mutate(rng, SEEDS[rng.getrandbits(8) % len(SEEDS)])
        dec.feed(data)
        while dec.next() is not None:
            pass
        if dec.pending() and rng.getrandbits(2) == 0:
            dec.gap()
        link.receive(data)
        if k % 3:  # now and then the app is slow to take messages or send acks
            while link.recv() is not None:
                pass
            while link.poll(k) is not None:
                pass
        try:
            msg = message.decode(data)
            guard.refuse(data, msg)
        except ValueError:  # DecodeError is one
            pass
        auth.verify(key, auth.DOWN, data)
        off = 0
        while off < len(data):
            took = sam.feed(memoryview(data)[off:])
            off += took
            body = sam.next()
            if body is not None:
                try:
                    idcard.person(idcard.read_text(body, sam.size))
                except ValueError:
                    pass
            if not took:
                break
        for c in data:
            tags.feed(k % 4, c)
        hmi_query.dwin_answer(data, 0x1000)
        if k % 200 == 0:
            gc.collect()
    gc.collect()
    print("ok", n, free0, gc.mem_free())
    # Characters from outside must not be interned (MicroPython keeps every
    # interned string for good): 300 different ones in a state's slots.
    gc.collect()
    f0 = gc.mem_free()
    for i in range(300):
        c = 0x4E00 + i
        try:
            message.decode(b'{"t":"state","dev":"d","boot":1,"n":2,"slots":"E'
                           + bytes((0xE0 | (c >> 12), 0x80 | ((c >> 6) & 0x3F),
                                    0x80 | (c & 0x3F))) + b'"}')
        except ValueError:
            pass
    gc.collect()
    print("intern", f0, gc.mem_free())


run(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, int(sys.argv[2]) if len(sys.argv) > 2 else 1)
