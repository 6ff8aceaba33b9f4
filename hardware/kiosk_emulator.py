"""Emulated kiosk peripherals on serial lines: the HMI display (records what
each VP address shows and the current page) and the voice module (records
what it was asked to say). They decode the frames of wire.hmi with
wire.hmi_module, as the real DWIN screen and SYN6288 module do; the card module
is hardware.idcard_emulator."""

from __future__ import annotations

from wire import hmi_module

from hardware.panel import PanelLayout, render_svg
from hardware.serial_peer import SerialPeer


class HmiScreen(SerialPeer):
    def __init__(self, port: str, baud: int = 115200) -> None:
        super().__init__(port, baud)
        self.dec = hmi_module.DwinDecoder()
        self.texts: dict[int, str] = {}
        self.page = -1
        self.pages_shown = 0
        self.shown: list[tuple[int, dict[int, str]]] = []  # every page switch, with its texts
        self.changed = 0  # bumped at each page switch: a picture of it is out of date

    def received(self, data: bytes) -> None:
        self.dec.feed(data)
        while (f := self.dec.next()) is not None:
            if f[0] == "read":  # a self-test asks: the page register, else zeros
                words = [max(self.page, 0)] if f[1] == 0x0014 else [0] * f[2]
                self.send(hmi_module.dwin_answer_frame(f[1], words[:f[2]]))
            elif f[0] == "page":
                self.page = f[1]
                self.pages_shown += 1
                self.shown.append((f[1], dict(self.texts)))
                self.changed += 1
            else:
                self.texts[f[1]] = f[2]

    def lines(self, vps: tuple[int, ...]) -> list[str]:
        return [self.texts.get(v, "") for v in vps]

    def picture(self, layout: PanelLayout, title: str = "") -> str:
        """The page on show as an SVG (hardware/panel.py). Texts written since
        the last page switch are not on the glass yet: DGUS shows a page's
        texts when it switches to it, and the firmware switches last."""
        shown = self.shown[-1][1] if self.shown else {}
        return render_svg(layout, self.page, shown, title)


class VoiceModule(SerialPeer):
    def __init__(self, port: str, baud: int = 9600) -> None:
        super().__init__(port, baud)
        self.dec = hmi_module.TtsDecoder()
        self.spoken: list[str] = []

    def received(self, data: bytes) -> None:
        self.dec.feed(data)
        while (t := self.dec.next()) is not None:
            if t[0] == "status":
                self.send(b"\x4f")  # idle: speaking is instant here
            else:
                self.spoken.append(t[1])
