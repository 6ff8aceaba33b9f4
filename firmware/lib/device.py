# Device start-up, called by main.py: reads config.json from the device's
# filesystem and board.json from the firmware folder, sets up the exception
# handler, and runs the configured app; a fatal error resets the device.
import asyncio
import gc
import json
import sys

import hal
import log

_log = log.get("main")


def _boot_count():
    try:
        with open("boot") as f:
            n = int(f.read()) + 1
    except (OSError, ValueError):
        n = 1
    with open("boot", "w") as f:
        f.write(str(n))
    return n


def _on_loop_error(loop, ctx):
    _log.error("unhandled: %r", ctx.get("exception"))


def _load_config(cfg_path):
    with open(cfg_path) as f:
        kind = json.load(f).get("kind", "dock")
    if kind != "dock":
        raise ValueError("unknown device kind %r" % kind)
    from apps.dock import config

    cfg = config.load(cfg_path)
    config.dump(cfg)
    # Config is read once: drop its code so the app gets the heap.
    sys.modules.pop("apps.dock.config", None)
    import apps.dock

    apps.dock.__dict__.pop("config", None)
    return cfg


async def _amain(here, cfg_path):
    cfg = _load_config(cfg_path)
    gc.collect()
    # Load all code before allocating buffers: code loaded into a fragmented
    # heap is what runs a 64K device out of memory.
    if cfg["link"] == "mqtt":
        import uplink.mqtt  # noqa: F401
    else:
        import uplink.serial  # noqa: F401
    from apps.dock.app import DockApp

    boot = _boot_count()
    with open(here + "/board.json") as f:
        board = json.load(f)
    # Keep only the pins this dock uses: the board file lists the maximum.
    for k in board["slots"]:
        board["slots"][k] = board["slots"][k][:cfg["slots"]]
    asyncio.get_event_loop().set_exception_handler(_on_loop_error)
    await hal.init(board, cfg)
    gc.collect()
    _log.info("heap free before app: %d", gc.mem_free())
    app = DockApp(cfg, board, boot)
    await app.run()


def main(here, cfg_path="config.json"):
    try:
        asyncio.run(_amain(here, cfg_path))
    except KeyboardInterrupt:
        _log.info("stopped")
    except Exception as e:
        _log.exc(e, "fatal")
        sys.print_exception(e)
        hal.reset()

