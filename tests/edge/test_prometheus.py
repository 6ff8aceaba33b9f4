"""GET /metrics in Prometheus's text format, parsed by prometheus-client's own
parser: counters by reason, devices by kind and state, each device's heap,
the outbox per uplink, stations by state, the latency histograms; served on a
port of its own too; a scraper needs the token."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from hardware.sim.town import Town
from tests.conftest import needs_mosquitto, run, until


@needs_mosquitto
def test_prometheus_text_with_the_edges_numbers(tmp_path: Path) -> None:
    async def main() -> None:
        async with Town(tmp_path, docks=2, slots=4, mqtt_share=0.5, seed=4, fill=0.5,
                        heartbeat_s=2, metrics_port=0) as town:
            await town.wait_online(30)
            assert town.edge is not None
            assert await town.rent(town.docks[0]) is not None
            town.edge.metrics.inc("rx.rejected", "bad_mac", n=3)  # as a forged frame would
            await until(lambda: all(d.heap_free for d in town.edge.registry.devices.values()),
                        10, "every dock's heartbeat")
            await until(lambda: town.edge.metrics.histograms.get(("event_to_backend", "city")),
                        10, "the rental's events at the backend")
            auth = {"Authorization": f"Bearer {town.token}"}
            own = f"http://127.0.0.1:{town.spec.metrics_port}"
            async with aiohttp.ClientSession() as s:
                for base in (f"http://127.0.0.1:{town.http_port}", own):
                    async with s.get(f"{base}/metrics", allow_redirects=False) as r:
                        assert r.status == 401  # no token, no numbers
                async with s.get(f"{own}/api/devices", headers=auth) as r:
                    assert r.status == 404  # the scrape port serves /metrics alone
                async with s.get(f"{own}/metrics", headers=auth) as r:
                    assert r.status == 200
                    assert r.headers["Content-Type"].startswith("text/plain")
                    text = await r.text()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in fams.values() for s in f.samples}
        assert fams["huimin_rx_rejected"].type == "counter"
        assert samples[("huimin_rx_rejected_total", (("reason", "bad_mac"),))] == 3
        assert samples[("huimin_events_stored_total", (("reason", ""),))] >= 1
        assert samples[("huimin_devices", (("kind", "dock"), ("state", "online")))] == 2
        for d in town.docks:
            assert samples[("huimin_device_heap_free_bytes", (("device", d.dev),))] > 0
            assert samples[("huimin_device_heap_low_bytes", (("device", d.dev),))] > 0
        assert ("huimin_outbox_rows", (("uplink", "city"),)) in samples
        assert sum(v for (n, _), v in samples.items() if n == "huimin_stations") == 2
        assert fams["huimin_inbound_backlog"].type == "gauge"
        # Latencies: the rent's events went to the store and on to the backend.
        assert fams["huimin_event_to_store_seconds"].type == "histogram"
        stored = samples[("huimin_event_to_store_seconds_count", ())]
        assert stored >= 1
        assert samples[("huimin_event_to_store_seconds_bucket", (("le", "+Inf"),))] == stored
        sent = samples[("huimin_event_to_backend_seconds_count", (("uplink", "city"),))]
        assert sent >= 1
        assert 0 < samples[("huimin_event_to_backend_seconds_sum", (("uplink", "city"),))] < 60
    run(main())


def test_the_grafana_dashboard_asks_only_for_series_the_edge_serves() -> None:
    import json
    import re

    from tests.conftest import ROOT

    dash = json.loads((ROOT / "docs" / "grafana" / "huimin-edge.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    names = {n for e in exprs for n in re.findall(r"huimin_[a-z_]+", e)}
    from edge.adapters.http.prometheus import HISTOGRAMS

    served = set(re.findall(r'GaugeMetricFamily\(\s*"(huimin_[a-z_]+)"',
                            (ROOT / "edge/adapters/http/prometheus.py").read_text()))
    served |= {f"huimin_{h}_seconds_{part}" for h in HISTOGRAMS
               for part in ("bucket", "sum", "count")}
    source = "\n".join(p.read_text() for p in (ROOT / "edge").rglob("*.py"))
    counted = {"huimin_" + re.sub(r"[^a-z0-9]", "_", c) + "_total"
               for c in re.findall(r'\.inc\(\s*"([a-z_.]+)"', source)}
    assert names, "no series in the dashboard"
    assert names <= served | counted, sorted(names - served - counted)
