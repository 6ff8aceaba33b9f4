"""The kiosk's display panel as a picture: the page the display emulator
holds (hardware/kiosk_emulator.py HmiScreen), drawn as the DGUS project lays
it out (the board file's "display": each text's VP address at its place,
size and colour, each page's background, at the panel's resolution). SVG, so
a browser draws the Chinese with a real font and a test can read it back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

BOARD = Path(__file__).resolve().parent / "boards" / "esp32s3_kiosk.json"


@dataclass(frozen=True)
class TextSpot:
    x: int
    y: int  # the baseline
    size: int
    colour: str | None  # None: the page's ink
    anchor: str = "start"
    band: str | None = None  # a coloured strip behind the text (the title bar)


@dataclass(frozen=True)
class PanelLayout:
    width: int
    height: int
    font: str
    pages: dict[int, tuple[str, str]]  # page -> (background, ink)
    texts: dict[int, TextSpot]  # VP address -> where and how

    @classmethod
    def from_board(cls, path: Path = BOARD) -> PanelLayout:
        d = json.loads(path.read_text(encoding="utf-8"))["display"]
        return cls(d["width"], d["height"], d["font"],
                   {int(p): (v["background"], v["ink"]) for p, v in d["pages"].items()},
                   {int(vp, 16): TextSpot(t["x"], t["y"], t["size"], t.get("colour"),
                                          t.get("anchor", "start"), t.get("band"))
                    for vp, t in d["texts"].items()})


def render_svg(layout: PanelLayout, page: int, texts: dict[int, str], title: str = "") -> str:
    """The page as the panel shows it. A page the project does not know (-1:
    nothing shown yet since power-on) is a dark screen."""
    background, ink = layout.pages.get(page, ("#111111", "#eeeeee"))
    w, h = layout.width, layout.height
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" role="img" aria-label={quoteattr(title or "kiosk screen")} '
           f'data-page="{page}" font-family={quoteattr(layout.font)}>',
           f'<rect width="{w}" height="{h}" fill="{background}"/>']
    if page in layout.pages:
        for vp, spot in sorted(layout.texts.items()):
            text = texts.get(vp, "")
            if spot.band is not None:
                out.append(f'<rect width="{w}" height="{spot.y + spot.size // 2}" '
                           f'fill="{spot.band}"/>')
            if text:  # xml:space: the firmware pads columns with spaces, kept as on the panel
                out.append(f'<text x="{spot.x}" y="{spot.y}" font-size="{spot.size}" '
                           f'fill="{spot.colour or ink}" text-anchor="{spot.anchor}" '
                           f'data-vp="{vp:#06x}" xml:space="preserve">{escape(text)}</text>')
    out.append("</svg>")
    return "\n".join(out)
