"""Each station's bikes over time: a point per step (the newest count in it),
bounded to the window, a flat line in from before the window, and fed by the
stations' own changes."""

from __future__ import annotations

from edge.config import StationConfig
from edge.core.history import BikesHistory
from edge.core.stations import Stations


def test_points_coalesce_per_step_and_stay_bounded() -> None:
    h = BikesHistory(hours=1, step_s=60)
    h.note("s1", 0, 5)
    h.note("s1", 30, 4)  # same minute: the newest wins
    h.note("s1", 61, 3)
    h.note("s1", 10, 9)  # from before the last point: ignored
    assert h.series("s1", 100) == [(0, 4), (60, 3)]
    for minute in range(2, 500):
        h.note("s1", minute * 60, minute % 7)
    pts = h.series("s1", 500 * 60)
    assert len(h._points["s1"]) <= 61  # an hour of minutes, whatever came
    assert pts[0] == (500 * 60 - 3600, (440 - 1) % 7)  # the count coming into the window
    assert pts[-1] == (499 * 60, 499 % 7)
    assert h.series("nowhere", 0) == []


def test_stations_record_their_bikes_as_docks_report() -> None:
    st = Stations((StationConfig("s1", "一号站", "One", 30.6, 119.6, ("d1",)),), started=0)
    st.apply_state("d1", 1, 1, "LLE", 1000)
    st.apply_state("d1", 1, 2, "LEE", 1100)
    st.set_online("d1", False, 1200)  # a silent dock: nothing rentable
    assert st.history.series("s1", 1300) == [(960, 2), (1080, 1), (1200, 0)]
