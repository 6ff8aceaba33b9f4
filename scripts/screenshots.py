"""Pictures of what people read, for a review or a closing note: the kiosk's
result, no-records and idle pages (drawn by the panel's renderer from the
firmware's own screens.py) and the public availability page at 1280 px and at a
phone's 390 px (a simulated town of eight stations, in headless Chromium).

  .venv/bin/python scripts/screenshots.py [--out build/screenshots]

Needs the test role (chromium, chromedriver, a CJK font: scripts/bootstrap.sh --test).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "firmware" / "cpython")]

from hardware.panel import PanelLayout, render_svg  # noqa: E402
from hardware.sim.town import Town  # noqa: E402
from tests.browser import browser  # noqa: E402

# Fictional villager and records: five payments, one still to be paid.
RECORDS = [["城乡居民基础养老金", 15300, "2026-06-15", "已发放"],
           ["耕地地力保护补贴", 12345, "2026-03-01", "已发放"],
           ["农机购置补贴", 300000, "2025-11-20", "已发放"],
           ["生态公益林补偿", 4560, "2025-09-01", "待发放"],
           ["低保金", 62000, "2025-08-01", "已发放"]]
NEAR = [("昌硕广场", 5, 7), ("递铺街道", 0, 12), ("竹博园", 3, 9), ("汽车站", 11, 1)]
HELP = "如有疑问，请咨询村委会或拨打12345"


def _screens_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kiosk_screens", ROOT / "firmware" / "apps" / "kiosk" / "screens.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def kiosk_pages(out: Path) -> list[Path]:
    scr = _screens_module()
    layout = PanelLayout.from_board()
    pages = {"kiosk-result": scr.result("王*明", "5226**********1234", RECORDS, None),
             "kiosk-no-records": scr.message("unknown", HELP),
             "kiosk-idle": scr.idle(NEAR),
             "kiosk-idle-before-feed": scr.idle([])}
    b = browser(820, 620)
    shots = []
    try:
        # Exactly the panel's pixels, no scroll bar.
        b.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": layout.width, "height": layout.height,
                           "deviceScaleFactor": 1, "mobile": False})
        for name, (page, title, lines, footer, _voice) in pages.items():
            texts = {scr.VP[0]: title, scr.VP[3]: footer % 30 if "%d" in footer else footer}
            for i, (left, right) in enumerate(lines):
                texts[scr.LINES[i]], texts[scr.AMOUNTS[i]] = left, right
            svg = Path(tempfile.mkdtemp()) / f"{name}.svg"
            svg.write_text(render_svg(layout, page, texts), encoding="utf-8")
            b.get(svg.as_uri())
            b.execute_script("document.documentElement.style.overflow = 'hidden'")
            shots.append(out / f"{name}.png")
            b.save_screenshot(str(shots[-1]))
    finally:
        b.quit()
    return shots


async def public_pages(out: Path) -> list[Path]:
    shots = []
    with tempfile.TemporaryDirectory() as tmp:
        async with Town(Path(tmp), docks=8, slots=2, mqtt_share=0, seed=11,
                        backend=False) as town:
            await town.wait_online()
            for width in (1280, 390):
                b: Any = await asyncio.to_thread(browser, max(width, 500), 900)
                try:
                    if width < 500:  # headless windows stop at 500: a phone's metrics
                        await asyncio.to_thread(
                            b.execute_cdp_cmd, "Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": 844, "deviceScaleFactor": 1,
                             "mobile": True})
                    await asyncio.to_thread(b.get, f"http://127.0.0.1:{town.http_port}/")
                    await asyncio.sleep(3)  # the first feed drawn
                    shots.append(out / f"public-{width}.png")
                    await asyncio.to_thread(b.save_screenshot, str(shots[-1]))
                finally:
                    await asyncio.to_thread(b.quit)
    return shots


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "build" / "screenshots",
                   help="folder for the PNGs (default build/screenshots)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for shot in [*kiosk_pages(args.out), *asyncio.run(public_pages(args.out))]:
        print(shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
