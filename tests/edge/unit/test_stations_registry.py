"""The read model (edge/core/registry.py, edge/core/stations.py) with plain
values: who is online, and what riders see at each station."""

from __future__ import annotations

from edge.config import StationConfig
from edge.core.registry import Registry
from edge.core.stations import Stations

S1 = StationConfig("s1", "一号站", "One", 30.6, 119.6, ("d1", "d2"))


def test_a_station_counts_only_what_online_docks_report() -> None:
    st = Stations((S1,), started=100.0)
    assert st.apply_state("d1", 1, 0, "LLEF", 101.0)
    assert st.apply_state("d2", 1, 0, "LXDB", 102.0)
    s = st.statuses()[0]
    assert (s.bikes_available, s.docks_available, s.bikes_disabled, s.docks_disabled) == \
        (3, 1, 2, 2)
    assert s.capacity == 8 and s.is_renting and s.last_reported == 102.0
    # Stale reports (same boot, older number) change nothing.
    assert not st.apply_state("d1", 1, 0, "EEEE", 103.0)
    # A silent dock: none of its bikes are offered, nothing is returnable there.
    st.set_online("d2", False, 104.0)
    s = st.statuses()[0]
    assert (s.bikes_available, s.bikes_disabled) == (2, 3)  # L, X and B of d2
    st.set_online("d1", False, 105.0)
    assert not st.statuses()[0].is_renting
    assert st.version == 4


def test_a_station_never_reported_is_dated_at_the_edges_start() -> None:
    st = Stations((S1,), started=100.0)
    st.restore("d1", 2, 7, "LLLL", 90.0)
    s = st.statuses()[0]
    assert s.bikes_available == 0 and s.bikes_disabled == 4  # known, but offline
    assert s.last_reported == 90.0


def test_registry_roles_come_from_configuration_not_from_hello() -> None:
    r = Registry({"d1": "s1", "k1": "s1"}, timeout_s=-1.0, kiosks=("k1",))
    assert r.devices["k1"].role == "kiosk" and r.devices["d1"].role == "dock"
    d1 = r.devices["d1"]
    assert r.seen(d1, "mqtt", 1.0) is True
    assert r.seen(d1, "mqtt", 2.0) is False  # already online
    assert [d.id for d in r.expire()] == ["d1"]  # silent beyond its timeout
    assert r.get("nobody") is None


def test_a_kiosk_provisioned_since_start_is_a_kiosk_as_a_listed_one() -> None:
    r = Registry({"d1": "s1", "k1": ""}, timeout_s=90.0, kiosks=("k1",))
    assert r.kiosks() == ["k1"]
    r.add("k2", "", "kiosk")  # huimin provision --edge ..., not in [[kiosks]]
    r.add("d2", "s1", "dock")
    assert sorted(r.kiosks()) == ["k1", "k2"]


def test_the_idle_screen_feed_reaches_every_online_kiosk_listed_or_not() -> None:
    import asyncio
    from typing import Any

    from edge.app.housekeeping import Housekeeping

    sent: list[tuple[str, Any]] = []

    class Links:
        def reachable(self, dev: str) -> bool:
            return True

        async def send(self, dev: str, msg: Any) -> None:
            sent.append((dev, msg))

    st = Stations((S1,), started=100.0)
    r = Registry({"d1": "s1"}, timeout_s=90.0)
    for k in ("k1", "k2"):
        r.seen(r.add(k, "", "kiosk"), "mqtt", 1.0)
    hk = Housekeeping(r, st, Links(), None, None, lambda s: None,  # type: ignore[arg-type]
                      heartbeat_timeout_s=90.0, events_retention_days=90.0,
                      dead_letter_max=10, station_names={"s1": "递铺街道"})

    async def one_round() -> None:
        task = asyncio.create_task(hk.kiosk_feed(every_s=60.0))
        await asyncio.sleep(0.05)
        task.cancel()
    asyncio.run(one_round())
    assert sorted(dev for dev, _ in sent) == ["k1", "k2"]


def test_a_kiosk_is_shown_the_stations_nearest_it_first() -> None:
    from edge.core.stations import StationStatus, nearest

    def status(sid: str) -> StationStatus:
        return StationStatus(sid, 2, 1, 0, 1, 0, True, True, True, 0.0, True)
    statuses = [status(s) for s in ("far", "near", "middle", "across", "edge")]
    places = {"far": (30.70, 119.70), "near": (30.6381, 119.6812), "middle": (30.645, 119.69),
              "across": (30.60, 119.60), "edge": (30.65, 119.67)}
    at = (30.638, 119.681)  # the village service centre
    assert [s.station_id for s in nearest(statuses, places, at)] == \
        ["near", "middle", "edge", "far"]
    assert [s.station_id for s in nearest(statuses, places, None)] == \
        ["far", "near", "middle", "across"]  # no place: the first four, as configured
