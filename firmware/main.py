# Device entry point, kept as source and kept tiny: compiling source costs
# heap on the device, so everything else ships as .mpy (see lib/device.py).
import sys

_here = __file__.rpartition("/")[0] or "."
sys.path[:0] = [_here + "/lib", _here]

import device  # noqa: E402

device.main(_here, sys.argv[1] if len(sys.argv) > 1 else "config.json")
