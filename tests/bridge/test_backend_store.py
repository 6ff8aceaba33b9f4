"""The development backend stores a site's events once by key, many rows a
statement (hardware/sim/backend.py): whatever the mix of new events, resends
and copies within one post, each is accepted once, in order, the rest are
duplicates, and a status among them is kept."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.sim.backend import DevBackend


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.integers(1, 40), max_size=300), min_size=1, max_size=4))
def test_each_event_is_accepted_once_and_resends_are_duplicates(
        tmp_path_factory: Any, posts: list[list[int]]) -> None:
    tmp = tmp_path_factory.mktemp("backend")

    async def main() -> None:  # the backend's connection is made in a running loop
        backend = DevBackend(tmp / "b.db", {"t": "k" * 16})
        seen: set[int] = set()
        try:
            for seqs in posts:
                items = [{"key": f"ev:d:e:{q}", "kind": "event",
                          "body": {"type": "rented", "site": "t", "station": "s1",
                                   "device": "d", "slot": 1, "seq": q}} for q in seqs]
                items.append({"key": "status:s1", "kind": "status",
                              "body": {"station_id": "s1", "site": "t",
                                       "version": len(seen)}})
                accepted, dups = backend.store_items("t", items)
                want_new = [f"ev:d:e:{q}" for q in dict.fromkeys(seqs) if q not in seen]
                assert [k for k in accepted if k.startswith("ev:")] == want_new
                assert sorted(dups) == sorted(
                    f"ev:d:e:{q}" for q in _repeats(seqs, seen))
                seen |= set(seqs)
            stored = {k for (k,) in backend.db.execute("SELECT key FROM events")}
            assert stored == {f"ev:d:e:{q}" for q in seen}
        finally:
            backend.db.close()
    asyncio.run(main())


def _repeats(seqs: list[int], seen: set[int]) -> list[int]:
    """Each item that is not its event's first arrival."""
    out, now = [], set(seen)
    for q in seqs:
        if q in now:
            out.append(q)
        now.add(q)
    return out
