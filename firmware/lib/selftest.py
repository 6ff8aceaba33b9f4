# A device's self-test, run by `huimin diag` over the REPL with the app stopped
# (never loaded by the app). Each check prints one JSON line
# {"check", "result": pass|FAIL|skip, "detail"}; the CLI makes the table.
# Dock: locks are moved only on empty slots: a slot holding a bike stays locked.
# Kiosk: the card module, a card if one is on the reader (nothing read from it
# is printed), the display and the voice module, each asked a question it must
# answer.
import asyncio
import json
import time

import hal


def _say(check, result, detail):
    print(json.dumps({"check": check, "result": result, "detail": detail}))


async def _until(fn, ms):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < ms:
        if fn():
            return True
        await asyncio.sleep_ms(20)
    return fn()


async def _dock(cfg, board):
    n = cfg["slots"]
    for k in board["slots"]:
        board["slots"][k] = board["slots"][k][:n]
    try:
        await hal.init(board, cfg)
    except Exception as e:
        _say("hardware bus", "FAIL", repr(e))
        return
    _say("hardware bus", "pass", "inputs read")
    io = hal.SlotIO(board["slots"], n)
    port = hal.tag_port(n)
    with_bike = []
    for s in range(n):
        present, latched = io.read(s)
        if present:
            with_bike.append(s)
            _say("slot %d lock" % s, "skip" if latched else "FAIL",
                 "bike in the slot, bolt closed" if latched else "bike in the slot, bolt OPEN")
            continue
        # An empty slot's bolt waits open for a bike: close it, then open again.
        io.set_lock(s, 1)
        closed = await _until(lambda: io.read(s)[1] == 1, 1500)  # noqa: B023 (awaited here)
        io.set_lock(s, 0)
        opened = await _until(lambda: io.read(s)[1] == 0, 1500)  # noqa: B023 (awaited here)
        _say("slot %d lock" % s, "pass" if opened and closed else "FAIL",
             "closed and opened" if opened and closed else
             ("bolt did not close" if not closed else "bolt did not open"))
    if not with_bike:
        _say("tag readers", "skip", "no bike to read")
        return
    seen = set()  # type: set[int]
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 3000 and len(seen) < len(with_bike):
        try:
            slot, _ = await asyncio.wait_for_ms(port.read(), 500)
            seen.add(slot)
        except asyncio.TimeoutError:
            pass
    for s in with_bike:
        _say("slot %d tag reader" % s, "pass" if s in seen else "FAIL",
             "read the bike's tag" if s in seen else "no frame in 3 s")


async def _ask(u, frame, buf, ms, done):
    """Write frame, then read into buf until done(bytes so far) or ms pass."""
    await u.write(frame)
    mv = memoryview(buf)
    n = 0
    t0 = time.ticks_ms()
    while n < len(buf):
        left = ms - time.ticks_diff(time.ticks_ms(), t0)
        if left <= 0:
            break
        try:
            n += await asyncio.wait_for_ms(u.readinto(mv[n:]), left)
        except asyncio.TimeoutError:
            break
        if done(bytes(buf[:n])):
            break
    return bytes(buf[:n])


async def _card_module(cfg):
    from drivers.sam_reader import ReadError, SamReader
    from wire import idcard

    try:
        sam = SamReader(hal.uart("sam", cfg))
    except Exception as e:
        _say("card module", "FAIL", "cannot open its serial line: %r" % e)
        return
    try:
        code = (await sam._xfer(idcard.STATUS))[2]
    except ReadError:
        _say("card module", "FAIL", "no answer to STATUS in 400 ms (power, cable or baud rate?)")
        return
    if code != idcard.OK:
        _say("card module", "FAIL", "status %02X%s" % (
            code, ": its SAM self-test failed, replace the module"
            if code == idcard.E_SELFTEST else ""))
        return
    _say("card module", "pass", "status 90 (normal)")
    found = await sam.present()
    if found is None:
        _say("card reading", "FAIL", "no answer to FIND in 400 ms")
        return
    if not found:
        _say("card reading", "skip", "no card on the reader (place a test card to check it)")
        return
    try:
        text = await sam.read_text()
        number = idcard.person(text)[1]
        bad = idcard.check_id(number)
    except ReadError as e:
        _say("card reading", "FAIL", "read failed: %s" % e.reason)
        return
    # What the card says is personal data: only whether it parsed is printed.
    _say("card reading", "FAIL" if bad else "pass",
         "text block read, but its ID number does not validate" if bad else
         "text block read and parsed, ID check digit valid")


async def _display(cfg):
    from wire import hmi_query

    u = hal.uart("display", cfg)
    got = await _ask(u, hmi_query.dwin_read(hmi_query.PAGE_NOW, 1), bytearray(32), 500,
                     lambda b: hmi_query.dwin_answer(b, hmi_query.PAGE_NOW) is not None)
    words = hmi_query.dwin_answer(got, hmi_query.PAGE_NOW)
    if words is None:
        _say("display", "FAIL", "no answer to a read of its page register in 500 ms"
             " (power, cable, baud rate, or the DGUS project's serial settings?)"
             if not got else "answered, but not a read answer: %d bytes" % len(got))
        return
    _say("display", "pass", "answered; page %d on show" % words[0])


async def _voice(cfg):
    from wire import hmi, hmi_query

    u = hal.uart("voice", cfg)
    got = await _ask(u, hmi_query.TTS_STATUS, bytearray(8), 500,
                     lambda b: hmi_query.TTS_IDLE in b or hmi_query.TTS_BUSY in b)
    if hmi_query.TTS_IDLE not in got and hmi_query.TTS_BUSY not in got:
        _say("voice module", "FAIL", "no answer to a status query in 500 ms"
             " (power, cable or baud rate?)")
        return
    buf = bytearray(64)
    await u.write(memoryview(buf)[:hmi.tts_say(buf, "语音自检")])
    _say("voice module", "pass", "answered %s; said 语音自检 (voice check): listen for it"
         % ("idle" if hmi_query.TTS_IDLE in got else "speaking"))


async def _kiosk(cfg, board):
    await hal.init(board, cfg)  # a board's UART pins, and its Wi-Fi if configured
    await _card_module(cfg)
    await _display(cfg)
    await _voice(cfg)


def run(slot="slot_a"):
    with open("config.json") as f:
        cfg = json.load(f)
    with open(slot + "/board.json") as f:
        board = json.load(f)
    # A fresh loop: the firmware that diag interrupted left its tasks queued
    # (the app's bus reader, its slot loop), which would run inside the test.
    asyncio.new_event_loop()
    if cfg.get("kind", "dock") == "kiosk":
        asyncio.run(_kiosk(cfg, board))
    else:
        asyncio.run(_dock(cfg, board))
