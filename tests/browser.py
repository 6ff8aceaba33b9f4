"""Headless Chromium for the pages' tests (Selenium, Debian's chromium and
chromedriver, installed by ./scripts/bootstrap.sh --test with a CJK font), and
what those tests share: signing in, and whether Chinese is drawn legibly."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                    reason="chromium/chromedriver not installed "
                                    "(./scripts/bootstrap.sh --test installs them)")

# Draws two different characters in a font stack and compares the pixels: with
# no CJK font, every Chinese character is the same empty box (tofu).
_LEGIBLE = """
const font = arguments[0];
// In HTML and in an SVG document alike.
const c = document.createElementNS("http://www.w3.org/1999/xhtml", "canvas");
c.width = 120; c.height = 90;
const g = c.getContext("2d");
function draw(ch) {
  g.clearRect(0, 0, 120, 90);
  g.font = "64px " + font;
  g.fillText(ch, 10, 70);
  return Array.from(g.getImageData(0, 0, 120, 90).data).join(",");
}
const a = draw("惠"), b = draw("民"), blank = draw(" ");
return a !== b && a !== blank && b !== blank;
"""


def browser(width: int = 1280, height: int = 900) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM  # type: ignore[assignment]
    profile = tempfile.mkdtemp(prefix="huimin-chrome-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    quit_browser = driver.quit

    def quit_and_clean() -> None:
        # Each run left its profile (a few MB) in /tmp: hundreds after a week of runs.
        try:
            quit_browser()
        finally:
            shutil.rmtree(profile, ignore_errors=True)
    driver.quit = quit_and_clean  # type: ignore[method-assign]
    return driver


def sign_in(b: Any, token: str) -> None:
    from selenium.webdriver.common.by import By

    b.find_element(By.ID, "token").send_keys(token)
    b.find_element(By.ID, "signin").click()


def chinese_is_legible(b: Any, font: str = "sans-serif") -> bool:
    return bool(b.execute_script(_LEGIBLE, font))
