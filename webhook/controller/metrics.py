"""Prometheus metrics of the controller loops.

They are registered on a registry the caller passes: the admission server's own (``webhook.admission.metrics.Metrics``
has one per instance) when the controller runs inside ``lanes-webhook serve``, so one ``/metrics`` shows both,
or a fresh one for the standalone ``python -m webhook.controller``. Never prometheus-client's global registry:
tests run several controllers in one process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ControllerMetrics:
    """Every metric the controller exports (names are part of the documented interface)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.gate_patches = Counter(
            "lanes_gate_patches",
            "Status PATCHes setting the lanes.io/registered condition, by result",
            ["result"],
            registry=r,
        )
        self.gate_pending = Gauge(
            "lanes_gate_pending_pods",
            "Gated pods in enabled namespaces whose lanes.io/registered condition is not True yet",
            registry=r,
        )
        self.leader = Gauge("lanes_leader", "1 while this replica holds the controller Lease", registry=r)
        self.cert_expiry = Gauge(
            "lanes_cert_expiry_timestamp_seconds",
            "Expiry (Unix time) of the self-managed certificates, by certificate (ca, serving)",
            ["certificate"],
            registry=r,
        )
        self.cert_rotations = Counter(
            "lanes_cert_rotations",
            "Certificates issued by the controller, by certificate (ca, serving)",
            ["certificate"],
            registry=r,
        )
        self.repair_uninjected = Gauge(
            "lanes_repair_uninjected_pods",
            "Pods in enabled namespaces that were admitted without injection",
            registry=r,
        )
        self.repair_evictions = Counter(
            "lanes_repair_evictions",
            "Eviction attempts of uninjected pods, by result (evicted, blocked, gone, error)",
            ["result"],
            registry=r,
        )
        self.watch_restarts = Counter(
            "lanes_controller_watch_errors",
            "List/watch failures followed by a backoff, by resource",
            ["resource"],
            registry=r,
        )
