"""The simulated kiosks' screens, for the technician dashboard: each display
emulator's page drawn as the panel shows it (hardware/panel.py), served on
loopback under a path with a secret in it. The edge's configuration names each
kiosk's URL (`[[kiosks]] screen_url`, a file of mode 0600), and the edge shows
it to signed-in technicians only (GET /api/kiosks/<id>/screen.svg): what a
villager sees is theirs, masked as it is."""

from __future__ import annotations

import secrets

from aiohttp import web

from edge.adapters.http.webserver import serve
from hardware.kiosk_emulator import HmiScreen
from hardware.panel import PanelLayout


class ScreenMirror:
    def __init__(self, screens: dict[str, HmiScreen]) -> None:
        self.screens = screens
        self.layout = PanelLayout.from_board()
        self._secret = secrets.token_urlsafe(16)
        self._runner: web.AppRunner | None = None
        self.port = 0
        app = web.Application()
        app.add_routes([web.get(f"/{self._secret}/kiosks/{{id}}/screen.svg", self.screen)])
        self.app = app

    def url(self, kiosk: str) -> str:
        return f"http://127.0.0.1:{self.port}/{self._secret}/kiosks/{kiosk}/screen.svg"

    async def start(self) -> None:
        self._runner, self.port = await serve(self.app, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def screen(self, request: web.Request) -> web.Response:
        kiosk = request.match_info["id"]
        hmi = self.screens.get(kiosk)
        if hmi is None:
            raise web.HTTPNotFound(text=f"no kiosk {kiosk}\n")
        return web.Response(text=hmi.picture(self.layout, f"{kiosk}'s screen"),
                            content_type="image/svg+xml", charset="utf-8",
                            headers={"Cache-Control": "no-store",
                                     "X-Screen-Version": str(hmi.changed)})
