# A dock's self-test, run by `huimin diag` over the REPL with the app stopped
# (never loaded by the app). Each check prints one JSON line
# {"check", "result": pass|FAIL|skip, "detail"}; the CLI makes the table.
# Locks are moved only on empty slots: a slot holding a bike stays locked.
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
        closed = await _until(lambda: io.read(s)[1] == 1, 1500)
        io.set_lock(s, 0)
        opened = await _until(lambda: io.read(s)[1] == 0, 1500)
        _say("slot %d lock" % s, "pass" if opened and closed else "FAIL",
             "closed and opened" if opened and closed else
             ("bolt did not close" if not closed else "bolt did not open"))
    if not with_bike:
        _say("tag readers", "skip", "no bike to read")
        return
    seen = set()
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


def run(slot="slot_a"):
    with open("config.json") as f:
        cfg = json.load(f)
    with open(slot + "/board.json") as f:
        board = json.load(f)
    if cfg.get("kind", "dock") != "dock":
        _say("self-test", "skip", "only docks have a self-test so far")
        return
    asyncio.run(_dock(cfg, board))
