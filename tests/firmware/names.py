"""How many names a device has interned once its code is loaded, counted the
way it boots: the bootloader (main.py, compiled from source on the device)
then the image's modules, from a simulated filesystem laid out by `install`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tools.firmware import build, install, micropython_path


def interned_at_boot(flash: Path, config: dict[str, object], modules: str) -> int:
    install(build("unix"), flash)
    (flash / "config.json").write_text(json.dumps(config))
    main = (flash / "main.py").read_text()
    marker = "import device  # noqa: E402\n"
    assert marker in main
    # Everything main.py does up to starting the app, then the app's imports.
    probe = main.split(marker)[0] + f"import micropython, device, {modules}\nmicropython.qstr_info()\n"
    r = subprocess.run([micropython_path(), "-X", "heapsize=256K", "-c", probe],
                       capture_output=True, text=True, timeout=30, cwd=flash)
    m = re.search(r"n_qstr=(\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    return int(m.group(1))
