# Device start-up, called by the bootloader (main.py) with the image slot it
# chose: reads config.json from the device's filesystem and board.json and
# version from the slot, sets up the exception handler, and runs the
# configured app (or, in update mode, lib/ota.py's updater); a fatal error
# resets the device. It also keeps a trial image's deadline and takes the
# apps' "ota" commands (docs/ota.md).
import asyncio
import gc
import json
import os
import sys

import hal
import log

_log = log.get("main")


_heap_low = 1 << 30


def heap():
    """(free, lowest): the heap free after a collection, and the lowest so
    measured since boot. Without the collection mem_free() counts garbage as
    used and a healthy device looks full (the heartbeat reports both)."""
    global _heap_low
    gc.collect()
    f = gc.mem_free()
    if f < _heap_low:
        _heap_low = f
    return f, _heap_low


def _on_loop_error(loop, c):  # c: the context (short names cost no heap)
    _log.error("unhandled: %r", c.get("exception"))


async def _amain(s, f, r, t):
    # s: the image slot's folder, f: the config file, r: the boot record
    here, cfg_path = s, f
    # asyncio loads its parts on first use and grows its namespace then (a
    # 752-byte dict resize): do it now, while the heap still has large holes.
    _ = (asyncio.wait_for, asyncio.wait_for_ms, asyncio.open_connection,
         asyncio.StreamReader, asyncio.StreamWriter, asyncio.Event, asyncio.Lock)
    # Config is read and checked once (its "kind" picks the app), then its code
    # is dropped so the app gets the heap.
    with open(cfg_path) as f:
        kind = json.load(f).get("kind", "dock")
    if kind not in ("dock", "kiosk"):
        raise ValueError("unknown device kind %r" % kind)
    config = __import__("apps.%s.config" % kind, None, None, ("load",))
    cfg = config.load(cfg_path)
    try:
        with open(here + "/version") as f:
            cfg["fw"] = f.read().strip()
    except OSError:
        cfg["fw"] = "dev"
    cfg["ota"] = r[4] if len(r) > 4 and r[4] != "-" else ""  # the last update's outcome
    config.dump(cfg)
    del config
    sys.modules.pop("apps.%s.config" % kind, None)
    parent = sys.modules.get("apps." + kind)
    if parent is not None:
        parent.__dict__.pop("config", None)
    gc.collect()
    # Load all code before allocating buffers: code loaded into a fragmented
    # heap is what runs a 64K device out of memory.
    if cfg["link"] == "mqtt":
        import uplink.mqtt  # noqa: F401
    else:
        import uplink.serial  # noqa: F401
    if t:
        # Update mode: the image is received with the whole heap, app not loaded.
        from ota import Updater as App
    else:
        App = __import__("apps.%s.app" % kind, None, None, ("App",)).App  # type: ignore[misc]

    # Boot counter: in hello and the Last Will, so a stale will is recognised.
    try:
        with open("boot") as f:
            boot = int(f.read()) + 1
    except (OSError, ValueError):
        boot = 1
    with open("boot", "w") as f:
        f.write(str(boot))
    with open(here + "/board.json") as f:
        board = json.load(f)
    if kind == "dock":
        # Keep only the pins this dock uses: the board file lists the maximum.
        for k in board["slots"]:
            board["slots"][k] = board["slots"][k][:cfg["slots"]]
    asyncio.get_event_loop().set_exception_handler(_on_loop_error)
    await hal.init(board, cfg)
    gc.collect()
    _log.info("heap free before app: %d", gc.mem_free())
    app = App(cfg, board, boot)
    del board  # the pin map is in the app's objects now; 1K back for the heap
    gc.collect()
    if int(r[2]) == 2:
        asyncio.create_task(_trial(cfg["fw"]))
    await app.run()


async def _trial(v):
    # A new image on trial must be heard by the edge (which then sends the "+"
    # confirm) within ota_confirm_s, or the device resets and the bootloader
    # rolls back (bootloader/slot.py).
    with open("config.json") as f:
        s = json.load(f).get("ota_confirm_s", 60)
    _log.info("trial of %s: %d s to confirm", v, s)
    await asyncio.sleep(s)
    try:
        os.stat("ota_confirmed")
    except OSError:
        _log.error("not confirmed: rolling back")
        hal.reset()


async def reboot():
    """Reset in half a second: the command's result leaves first."""
    await asyncio.sleep_ms(500)
    hal.reset()


def ota_command(msg):
    """An app's "ota" command -> (ok, err). The app only leaves a marker for
    the bootloader (bootloader/slot.py), which owns the boot record: "+"
    confirms an image on trial; any other step starts an update, so reboot
    into update mode, where the image comes in with the heap to spare."""
    ok = msg.get("path") == "+"
    with open("ota_confirmed" if ok else "ota_update_mode", "w"):
        pass
    if not ok:
        asyncio.create_task(reboot())
    return True, None


def main(s, f="config.json", r=None, t=False):
    """s: the image slot's folder, f: the config file, r: the boot record,
    t: update mode (bootloader/slot.py)."""
    try:
        asyncio.run(_amain(s, f, r or "a - 0 0 -    ".split(), t))
    except KeyboardInterrupt:
        _log.info("stopped")
    except Exception as e:
        _log.exc(e, "fatal")
        sys.print_exception(e)
        hal.reset()

