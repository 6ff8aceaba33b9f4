# Bootloader entry: kept as source, kept tiny (its code stays in memory while
# the app runs), never updated over the air. bootloader/slot.py picks the
# image slot (docs/ota.md) and is dropped before the app loads.
import sys

sys.path[:0] = ["bootloader"]
import slot  # noqa: E402

r, f, t = slot.choose()  # t: update mode (lib/ota.py)
del sys.modules["slot"], slot
sys.path[:1] = [f + "/lib", f]
import device  # noqa: E402

device.main(f, sys.argv[1] if len(sys.argv) > 1 else "config.json", r, t)
