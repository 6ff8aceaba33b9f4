"""Each station's bikes over the last hours, for the technician dashboard's
small charts: a point per change, coalesced to one per `step_s` (the newest
count in that step wins), and at most a window's worth per station, so memory
is bounded whatever the traffic (6 h at 60 s: 360 points a station). Kept in
memory: after a restart the charts start again from the first reports."""

from __future__ import annotations

from collections import deque


class BikesHistory:
    def __init__(self, hours: float = 6.0, step_s: float = 60.0) -> None:
        self.window_s = hours * 3600
        self.step_s = step_s
        self._points: dict[str, deque[tuple[int, int]]] = {}  # station -> (step, bikes)
        self._maxlen = int(self.window_s // step_s) + 1

    def note(self, station: str, t: float, bikes: int) -> None:
        step = int(t // self.step_s)
        pts = self._points.get(station)
        if pts is None:
            pts = self._points[station] = deque(maxlen=self._maxlen)
        if pts and pts[-1][0] >= step:
            if pts[-1][0] == step:
                pts[-1] = (step, bikes)
            return  # a report from before the last point (a clock behind): not drawn
        pts.append((step, bikes))

    def series(self, station: str, now: float) -> list[tuple[float, int]]:
        """[(time, bikes)] within the window, oldest first; the count before the
        window's start, if known, is given at the start (a flat line in)."""
        start = now - self.window_s
        out: list[tuple[float, int]] = []
        before: int | None = None
        for step, bikes in self._points.get(station, ()):
            t = step * self.step_s
            if t < start:
                before = bikes
            else:
                out.append((t, bikes))
        if before is not None:
            out.insert(0, (start, before))
        return out
