# Device start-up, called by the bootloader (main.py) with the image slot it
# chose: reads config.json from the device's filesystem and board.json and
# version from the slot, sets up the exception handler, and runs the
# configured app; a fatal error resets the device. On a trial boot of a new
# image it also keeps the update's deadline (docs/ota.md).
import asyncio
import gc
import json
import sys

import hal
import log

_log = log.get("main")


def _on_loop_error(loop, ctx):
    _log.error("unhandled: %r", ctx.get("exception"))


async def _amain(here, cfg_path, r):
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
    App = __import__("apps.%s.app" % kind, None, None, ("App",)).App

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
    if r[2] == "2":  # a new image on trial: lib/ota.py keeps its deadline
        import ota

        asyncio.create_task(ota.trial(here, cfg["fw"]))
    await app.run()


def main(here, cfg_path="config.json", r="a - 0 0 -".split()):
    try:
        asyncio.run(_amain(here, cfg_path, r))
    except KeyboardInterrupt:
        _log.info("stopped")
    except Exception as e:
        _log.exc(e, "fatal")
        sys.print_exception(e)
        hal.reset()

