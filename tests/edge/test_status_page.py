"""The public availability page in a real headless Chromium (Selenium): it
renders every station with its bikes and docks, and updates by itself when a
bike is rented at a dock running the real firmware."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from hardware.sim.town import Town
from tests.browser import browser as new_browser
from tests.browser import chinese_is_legible, needs_chromium, sign_in
from tests.conftest import run, until

pytestmark = needs_chromium

# A station's chart on the dashboard: its text alternative and its line.
_CHART = """
const f = document.querySelector('#charts figure[data-station="' + arguments[0] + '"]');
return f ? [f.querySelector("svg").getAttribute("aria-label"),
            f.querySelector("path").getAttribute("d")] : null;
"""

# A station's marker on the public page's map, as the browser has drawn it.
_MARKER = """
const g = document.querySelector('#map g.station[data-station="' + arguments[0] + '"]');
if (!g) return {count: null};
const box = g.getBoundingClientRect();
return {count: g.querySelector("text.count").textContent, state: g.classList[1],
        x: box.x + box.width / 2, y: box.y, title: g.querySelector("title").textContent,
        label: document.querySelector('#map text.label[data-station="' + arguments[0] + '"]')
          .textContent,
        fill: g.querySelector("circle").getAttribute("fill")};
"""


def test_availability_page_renders_and_updates_live(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=4, mqtt_share=0, seed=6, fill=0.75,
                        backend=False) as town:
            await town.wait_online()
            assert town.edge is not None
            browser = await asyncio.to_thread(new_browser)
            try:
                from selenium.webdriver.common.by import By

                await asyncio.to_thread(browser.get, f"http://127.0.0.1:{town.http_port}/")
                d = town.docks[0]

                def cell(station: str, cls: str) -> str:
                    rows = browser.find_elements(By.CSS_SELECTOR, f'tr[data-station="{station}"]')
                    return rows[0].find_element(By.CLASS_NAME, cls).text if rows else ""

                await until(lambda: cell(d.station, "bikes") ==
                            str(d.emulator.locked_bikes()), 20)
                names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "tbody tr td")]
                assert any(town.cfg.stations[1].name_zh in n for n in names)  # type: ignore[union-attr]
                before = d.emulator.locked_bikes()
                assert await town.rent(d) is not None
                await until(lambda: cell(d.station, "bikes") == str(before - 1), 20)
                assert cell(d.station, "docks") == str(d.emulator.free_slots())

                # The map: each station at its coordinates, its bikes in the marker,
                # a text alternative, and live colours.
                def marker(station: str) -> dict[str, Any]:
                    return browser.execute_script(_MARKER, station)  # type: ignore[no-any-return]

                await until(lambda: marker(d.station)["count"] == str(before - 1), 20)
                cfgs = {c.id: c for c in town.cfg.stations}  # type: ignore[union-attr]
                a, b = (marker(x.station) for x in town.docks)
                ca, cb = cfgs[town.docks[0].station], cfgs[town.docks[1].station]
                assert (a["x"] < b["x"]) == (ca.lon < cb.lon)  # east is right
                assert (a["y"] < b["y"]) == (ca.lat > cb.lat)  # north is up
                assert ca.name_zh in a["title"] and f"可借 {before - 1} 辆" in a["title"]
                svg = browser.find_element(By.ID, "map")
                assert svg.get_attribute("role") == "img"
                assert "站点列表" in browser.find_element(By.TAG_NAME, "caption").text
                while d.emulator.locked_bikes():
                    assert await town.rent(d) is not None
                await until(lambda: marker(d.station)["state"] == "empty", 20)
                assert "无车" in marker(d.station)["label"]
                assert marker(d.station)["fill"] == "#b42318"
                assert await asyncio.to_thread(chinese_is_legible, browser,
                                               '"WenQuanYi Micro Hei", sans-serif')
                shot = tmp_path / "page.png"
                await asyncio.to_thread(browser.save_screenshot, str(shot))
                assert shot.stat().st_size > 1000
            finally:
                await asyncio.to_thread(browser.quit)
    run(main())


# What a reader sees of the public page: page width against the window, the markers'
# circles (centre, radius), the smallest label drawn, each table cell's right edge.
_LAYOUT = """
const circles = [...document.querySelectorAll('#map g.station circle')].map((c) => {
  const b = c.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2, b.width / 2];
});
const labels = [...document.querySelectorAll('#map text.label, #map text.count')]
  .map((t) => t.getBoundingClientRect().height).filter((h) => h > 0);
const boxes = [...document.querySelectorAll('#map text.label')]
  .filter((t) => t.closest('[data-station]')).map((t) => {
  const b = t.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom, t.textContent];
});
const cells = [...document.querySelectorAll('table th, table td')]
  .map((c) => c.getBoundingClientRect().right);
return {page: document.documentElement.scrollWidth, window: window.innerWidth, circles, boxes,
        smallest: Math.min(...labels), right: Math.max(...cells),
        updated: document.getElementById('updated').textContent};
"""


@pytest.mark.parametrize("width", [390, 1280])
def test_the_public_page_reads_on_a_phone_and_a_desktop(tmp_path: Path, width: int) -> None:
    """Eight stations around the town centre: at phone width and desktop width, no
    horizontal scroll, no table cell past the window, no marker over another (a count
    hidden), no station's words over a marker or over other words, labels at a readable
    size, the time as a zh-CN page writes it."""
    import re

    async def main() -> None:
        async with Town(tmp_path, docks=8, slots=2, mqtt_share=0, seed=11, backend=False) as town:
            await town.wait_online()
            browser = await asyncio.to_thread(new_browser, max(width, 500), 900)
            try:
                if width < 500:  # below headless Chromium's smallest window: a phone's screen
                    await asyncio.to_thread(browser.execute_cdp_cmd,
                                            "Emulation.setDeviceMetricsOverride",
                                            {"width": width, "height": 844,
                                             "deviceScaleFactor": 1, "mobile": True})
                await asyncio.to_thread(browser.get, f"http://127.0.0.1:{town.http_port}/")

                def layout() -> dict[str, Any]:
                    return browser.execute_script(_LAYOUT)  # type: ignore[no-any-return]
                await until(lambda: len(layout()["circles"]) == 8, 20)
                got = layout()
                print(width, {k: v for k, v in got.items() if k not in ("circles", "boxes")})
                assert got["page"] <= got["window"], got
                assert got["right"] <= got["window"], got
                circles = got["circles"]
                for i, (x, y, r) in enumerate(circles):
                    for (x2, y2, r2) in circles[i + 1:]:
                        assert ((x - x2) ** 2 + (y - y2) ** 2) ** 0.5 >= r + r2, (x, y, x2, y2)
                # No station's words lie over a marker (its count) or over other words.
                for (left, top, right, bottom, text) in got["boxes"]:
                    for (x, y, r) in circles:
                        nx, ny = min(max(x, left), right), min(max(y, top), bottom)
                        assert (x - nx) ** 2 + (y - ny) ** 2 >= r * r, (text, x, y)
                words = got["boxes"]
                assert len(words) == 16, words  # a name and its counts, for each station
                for i, a in enumerate(words):
                    for b in words[i + 1:]:
                        assert (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]), \
                            (a, b)
                assert got["smallest"] >= 14, got  # CSS px: 18 px labels, not scaled down
                assert re.fullmatch(r"\d{1,2}:\d{2}:\d{2}", got["updated"]), got["updated"]
                shot = tmp_path / f"public-{width}.png"  # kept with the test run
                await asyncio.to_thread(browser.save_screenshot, str(shot))
            finally:
                await asyncio.to_thread(browser.quit)
    run(main())


def test_fleet_dashboard_and_cli_list_devices_live(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The technician's dashboard (<edge>/fleet) shows each device's state,
    firmware and faults, and picks up a newly provisioned device by itself;
    `huimin fleet` prints the same."""
    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=4, mqtt_share=0.5, seed=3,
                        backend=False, heartbeat_s=2) as town:
            await town.wait_online()
            edge = f"http://127.0.0.1:{town.http_port}"
            browser = await asyncio.to_thread(new_browser)
            try:
                from selenium.webdriver.common.by import By

                # Not signed in: the dashboard sends the browser to the sign-in form;
                # a wrong token is refused there, the technician's token lets it in.
                await asyncio.to_thread(browser.get, f"{edge}/fleet")
                assert "/login" in browser.current_url
                await asyncio.to_thread(sign_in, browser, "hmt_wrong")
                # (read in a thread: the browser waits on the edge, which runs in this loop)
                await until(lambda: asyncio.to_thread(lambda: "not valid" in browser.page_source),
                            10)
                await asyncio.to_thread(sign_in, browser, town.token)
                await until(lambda: asyncio.to_thread(
                    lambda: browser.current_url.endswith("/fleet")), 10)

                def row(dev: str) -> dict[str, str]:
                    rows = browser.find_elements(By.CSS_SELECTOR, f'tr[data-device="{dev}"]')
                    if not rows:
                        return {}
                    return {td.get_attribute("class").split()[0]: td.text
                            for td in rows[0].find_elements(By.TAG_NAME, "td")}

                for d in town.docks:
                    await until(lambda d=d: row(d.dev).get("state") == "在线 online", 15)
                    r = row(d.dev)
                    assert r["fw"] == "0.1.0" and r["station"] == d.station
                    assert r["link"].startswith(d.link) and r["faults"] == "0"
                    # The heartbeat's heap after a collection, and its lowest since boot.
                    await until(lambda d=d: re.fullmatch(r"\d+\.\dK \(low \d+\.\dK\)",
                                                         row(d.dev).get("heap", "")), 15)
                # Each station's bikes over the last hours, following a rent.
                def chart(station: str) -> list[str]:
                    return browser.execute_script(_CHART, station) or ["", ""]  # type: ignore[no-any-return]

                d0 = town.docks[0]
                await until(lambda: chart(d0.station)[1].startswith("M"), 15)
                before = d0.emulator.locked_bikes()
                assert await town.rent(d0) is not None
                await until(lambda: f"now {before - 1}," in chart(d0.station)[0], 20)
                # (one point a minute, the newest count: a town's minute is one step)
                assert chart(d0.station)[1].endswith("H260"), chart(d0.station)
                from tools.provision import register
                await asyncio.to_thread(register, edge, "dock-099", town.docks[0].station, "dock",
                                        "99" * 32, None, town.token)
                await until(lambda: row("dock-099").get("state") == "离线 offline", 10)
                summary = browser.find_element(By.ID, "summary").text
                assert summary.startswith("共3台设备，2台在线，1台离线"), summary
                assert summary.endswith("3 devices, 2 online, 1 offline"), summary
            finally:
                await asyncio.to_thread(browser.quit)
            from tools.cli import main as cli
            token_file = tmp_path / "token"
            token_file.write_text(town.token)
            token_file.chmod(0o600)
            rc = await asyncio.to_thread(cli, ["fleet", "--edge", edge, "--check",
                                               "--token-file", str(token_file)])
            out = capsys.readouterr().out
            assert rc == 3 and "dock-099" in out and "OFFLINE" in out
            assert "3 devices, 2 online, 1 offline" in out
    run(main())
