"""The edge's numbers in Prometheus's text format (`GET /metrics`), made at
each scrape from the edge's own state, so nothing is counted twice:

  huimin_<counter>_total{reason}           every counter of edge/core/metrics.py
  huimin_devices{kind,state}               devices known, online or offline
  huimin_device_heap_free_bytes{device}    free heap after a collection (heartbeat)
  huimin_device_heap_low_bytes{device}     the lowest since the device booted
  huimin_outbox_rows{uplink}               waiting for the city, per uplink
  huimin_outbox_oldest_age_seconds{uplink}
  huimin_inbound_backlog                   messages taken, not yet handled
  huimin_stations{state}                   empty, full, offline or ok
  huimin_alarm_active{alarm}               1 for each raised alarm (disk_full, ...)
  huimin_event_to_store_seconds            histogram: a dock's event to its commit here
  huimin_event_to_backend_seconds{uplink}  histogram: arrival here to the backend's answer
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from edge.core.metrics import Metrics
from edge.core.registry import Registry
from edge.core.stations import Stations

_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")
# Each histogram the edge keeps: its help text, and what its label names.
HISTOGRAMS = {
    "event_to_store": ("seconds from a dock's event (its synced stamp, else its arrival) "
                       "to its commit in the edge's database", ""),
    "event_to_backend": ("seconds from an event's arrival at the edge to the backend's "
                         "acceptance, per uplink", "uplink"),
}


class EdgeNumbers(Protocol):
    metrics: Metrics
    registry: Registry
    stations: Stations

    def backlog(self) -> dict[str, tuple[int, float]]: ...

    def inbound_backlog(self) -> int: ...

    def alarms(self) -> dict[str, float]: ...


def metric_name(counter: str) -> str:
    return "huimin_" + _UNSAFE.sub("_", counter)


class EdgeCollector(Collector):
    def __init__(self, edge: EdgeNumbers) -> None:
        self.edge = edge

    def collect(self) -> Iterator[Metric]:
        e = self.edge
        for name, reasons in e.metrics.by_name().items():
            fam = CounterMetricFamily(metric_name(name), f"the edge's counter {name}",
                                      labels=["reason"])
            for reason, n in reasons.items():
                fam.add_metric([reason], n)
            yield fam
        devices = GaugeMetricFamily("huimin_devices", "devices known, by kind and state",
                                    labels=["kind", "state"])
        counts = Counter((d.kind, "online" if d.online else "offline")
                         for d in e.registry.devices.values())
        for kind in sorted({d.kind for d in e.registry.devices.values()}):
            for state in ("online", "offline"):
                devices.add_metric([kind, state], counts[(kind, state)])
        yield devices
        free = GaugeMetricFamily("huimin_device_heap_free_bytes",
                                 "free heap after a collection, from the heartbeat",
                                 labels=["device"])
        low = GaugeMetricFamily("huimin_device_heap_low_bytes",
                                "the lowest free heap since the device booted", labels=["device"])
        for d in e.registry.devices.values():
            if d.heap_free is not None:
                free.add_metric([d.id], d.heap_free)
            if d.heap_low is not None:
                low.add_metric([d.id], d.heap_low)
        yield free
        yield low
        rows = GaugeMetricFamily("huimin_outbox_rows", "items waiting for the city",
                                 labels=["uplink"])
        age = GaugeMetricFamily("huimin_outbox_oldest_age_seconds",
                                "age of the oldest item waiting", labels=["uplink"])
        for uplink, (n, oldest) in sorted(e.backlog().items()):
            rows.add_metric([uplink], n)
            age.add_metric([uplink], oldest)
        yield rows
        yield age
        yield GaugeMetricFamily("huimin_inbound_backlog", "messages taken, not yet handled",
                                value=e.inbound_backlog())
        stations = GaugeMetricFamily("huimin_stations", "stations by state", labels=["state"])
        by_state = Counter(_state(s.online, s.bikes_available, s.docks_available)
                           for s in e.stations.statuses())
        for state in ("empty", "full", "offline", "ok"):
            stations.add_metric([state], by_state[state])
        yield stations
        alarms = GaugeMetricFamily("huimin_alarm_active", "1 for each raised alarm",
                                   labels=["alarm"])
        for name in sorted(e.alarms()):
            alarms.add_metric([name], 1)
        yield alarms
        yield from _histograms(e.metrics)


def _histograms(metrics: Metrics) -> Iterator[Metric]:
    for name, (doc, label) in HISTOGRAMS.items():
        fam = HistogramMetricFamily(f"huimin_{name}_seconds", doc,
                                    labels=[label] if label else None)
        for (hname, value), h in sorted(metrics.histograms.items()):
            if hname == name:
                buckets = [(_bound(b), float(n)) for b, n in h.cumulative()]
                fam.add_metric([value] if label else [], buckets, h.sum)
        yield fam


def _bound(b: float) -> str:
    return "+Inf" if b == float("inf") else repr(b)


def _state(online: bool, bikes: int, docks: int) -> str:
    if not online:
        return "offline"
    if bikes == 0:
        return "empty"
    return "full" if docks == 0 else "ok"


def registry_for(edge: EdgeNumbers) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(EdgeCollector(edge))
    return reg
