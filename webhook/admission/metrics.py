"""Prometheus metrics of the admission server.

Each :class:`Metrics` owns its own registry (not prometheus-client's global one) so several apps can live in
one process, as they do in tests, without "duplicated timeseries" errors. The registry also carries the
standard process/platform/GC collectors, so ``/metrics`` has the usual ``process_*`` and ``python_*`` series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

#: Admission answers take tens to hundreds of microseconds; default Prometheus buckets start at 5 ms and would
#: put every request in the first bucket.
DURATION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
    float("inf"),
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class CacheStats:
    """Per-resource numbers a watch cache reports at scrape time (see :meth:`Metrics.watch_owner_cache`)."""

    objects: int
    relists: int
    watch_errors: int


class _OwnerCacheCollector(Collector):
    """Reads the owner cache's counters at scrape time instead of updating metrics from its watch threads."""

    def __init__(self, synced: Callable[[], bool], stats: Callable[[], Mapping[str, CacheStats]]) -> None:
        self._synced = synced
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        synced = GaugeMetricFamily(
            "lanes_owner_cache_synced", "1 once every watched resource completed its initial list"
        )
        synced.add_metric([], 1.0 if self._synced() else 0.0)
        objects = GaugeMetricFamily("lanes_owner_cache_objects", "Objects held by the owner cache", labels=["kind"])
        relists = CounterMetricFamily(
            "lanes_owner_cache_relists", "Full lists (initial, after 410 Gone or errors)", labels=["kind"]
        )
        errors = CounterMetricFamily(
            "lanes_owner_cache_watch_errors", "List/watch failures followed by a backoff", labels=["kind"]
        )
        for kind, stat in sorted(self._stats().items()):
            objects.add_metric([kind], stat.objects)
            relists.add_metric([kind], stat.relists)
            errors.add_metric([kind], stat.watch_errors)
        return [synced, objects, relists, errors]


class Metrics:
    """Every metric the webhook exports; the app and the TLS reloader hold one instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter(
            "lanes_admission_requests",
            "Admission requests by endpoint and outcome",
            ["path", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "lanes_admission_duration_seconds",
            "Time from request received to response built, by endpoint",
            ["path"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.injections = Counter("lanes_injections", "Pods that received the Lanes injection", registry=r)
        self.skips = Counter(
            "lanes_injection_skips", "Pods admitted without injection, by reason", ["reason"], registry=r
        )
        self.warnings = Counter(
            "lanes_admission_warnings", "Warnings returned in AdmissionReview responses", ["path"], registry=r
        )
        self.errors = Counter(
            "lanes_admission_errors",
            "Internal errors while answering; the object was admitted unchanged",
            ["path"],
            registry=r,
        )
        self.cert_reloads = Counter(
            "lanes_tls_certificate_reloads",
            "Serving certificate reload attempts after the files changed",
            ["result"],
            registry=r,
        )
        self.cert_not_after = Gauge(
            "lanes_tls_certificate_not_after_timestamp_seconds",
            "Expiry (Unix time) of the serving certificate in use",
            registry=r,
        )

    def watch_owner_cache(self, synced: Callable[[], bool], stats: Callable[[], Mapping[str, CacheStats]]) -> None:
        """Export the owner cache's state (``lanes_owner_cache_*``) read at scrape time."""
        self.registry.register(_OwnerCacheCollector(synced, stats))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
