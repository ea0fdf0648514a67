"""What a namespace has, as the renderer needs it: apps, their versions per lane, their Service, readiness.

Derived from three kinds of objects and nothing else: pods (the webhook labels each with ``lanes.io/app`` and
``lanes.io/lane``), the Services that select them (the app's "base" Service: whatever users and other apps call),
and the EndpointSlices of the generated per-lane Services (readiness exactly as the data planes see it: a lane
version counts as serving only once the EndpointSlice controller reports a ready endpoint for it). Pure: the
reconciler feeds it from its watch caches, ``lanes route`` from files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from webhook.controller.routing import names

JSON = dict[str, Any]


@dataclass(frozen=True)
class Version:
    """The pods of one app in one lane."""

    lane: str
    pods: int
    warmup: float = 0.0  # seconds (the largest of the pods'): the data plane's slow-start window


@dataclass(frozen=True)
class BaseService:
    """A user's Service that selects an app's pods (all lanes of it)."""

    name: str
    selector: Mapping[str, str]
    ports: tuple[JSON, ...]

    def port_numbers(self) -> tuple[int, ...]:
        return tuple(int(p["port"]) for p in self.ports)


@dataclass(frozen=True)
class App:
    name: str
    versions: Mapping[str, Version] = field(default_factory=dict)
    service: BaseService | None = None
    other_services: tuple[str, ...] = ()  # further Services selecting the app: not routed, reported


@dataclass(frozen=True)
class Inventory:
    namespace: str
    apps: Mapping[str, App] = field(default_factory=dict)
    ready: Mapping[str, int] = field(default_factory=dict)  # Service name -> ready endpoints

    def ready_endpoints(self, service: str) -> int:
        return self.ready.get(service, 0)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels = _meta(obj).get("labels")
    return labels if isinstance(labels, dict) else {}


def is_generated(obj: Mapping[str, Any]) -> bool:
    return _labels(obj).get(names.LABEL_GENERATED) == "true"


def pod_warmup(pod: Mapping[str, Any]) -> float:
    """The pod's warm-up window in seconds: the resolved one the webhook recorded in ``lanes.io/status``, else
    the ``lanes.io/warmup`` annotation; 0 when neither is there or readable."""
    annotations = _meta(pod).get("annotations") or {}
    status = annotations.get(names.ANN_STATUS)
    if isinstance(status, str):
        try:
            value = orjson.loads(status).get("config", {}).get("warmup")
            if isinstance(value, int | float) and value >= 0:
                return float(value)
        except (ValueError, AttributeError):
            pass
    raw = annotations.get(names.ANN_WARMUP)
    if isinstance(raw, str):
        from webhook.contract.durations import DurationError, parse_duration

        try:
            return max(0.0, parse_duration(raw))
        except DurationError:
            return 0.0
    return 0.0


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _base_service(service: Mapping[str, Any]) -> BaseService | None:
    spec = service.get("spec")
    if not isinstance(spec, dict) or is_generated(service):
        return None
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not selector or names.LABEL_LANE in selector:
        return None  # no selector (manual endpoints), or already pinned to one lane
    if spec.get("type") == "ExternalName":
        return None
    ports = []
    for port in spec.get("ports") or ():
        if isinstance(port, dict) and isinstance(port.get("port"), int):
            kept = {k: port[k] for k in ("name", "port", "targetPort", "protocol", "appProtocol") if k in port}
            ports.append(kept)
    if not ports:
        return None
    return BaseService(str(_meta(service).get("name")), dict(selector), tuple(ports))


def ready_counts(slices: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Ready endpoints per Service from its EndpointSlices. Only an explicit ``ready: true`` counts (the
    EndpointSlice controller always writes it; Traefik skips endpoints without it). Dual-stack slices are not
    double-counted: per Service, the larger count of its address families."""
    per_family: dict[tuple[str, str], int] = {}
    for item in slices:
        service = _labels(item).get(names.SERVICE_NAME_LABEL)
        if not service:
            continue
        family = str(item.get("addressType") or "")
        count = 0
        for endpoint in item.get("endpoints") or ():
            if isinstance(endpoint, dict) and (endpoint.get("conditions") or {}).get("ready") is True:
                count += 1
        per_family[(service, family)] = per_family.get((service, family), 0) + count
    out: dict[str, int] = {}
    for (service, _), count in per_family.items():
        out[service] = max(out.get(service, 0), count)
    return out


def build_inventory(
    namespace: str,
    pods: Iterable[Mapping[str, Any]],
    services: Iterable[Mapping[str, Any]],
    ready: Mapping[str, int] | None = None,
) -> Inventory:
    """The :class:`Inventory` of ``namespace`` from its pods and Services (other namespaces' objects are ignored)
    and the ready endpoints per Service (see :func:`ready_counts`)."""
    in_ns = [p for p in pods if _meta(p).get("namespace") in (namespace, None)]
    bases = [b for s in services if _meta(s).get("namespace") in (namespace, None) if (b := _base_service(s))]
    grouped: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    app_labels: dict[str, list[Mapping[str, str]]] = {}
    for pod in in_ns:
        labels = _labels(pod)
        app = labels.get(names.LABEL_APP)
        if not app:
            continue
        lane = labels.get(names.LABEL_LANE) or "base"
        grouped.setdefault(app, {}).setdefault(lane, []).append(pod)
        app_labels.setdefault(app, []).append(labels)
    apps: dict[str, App] = {}
    for app, lanes in grouped.items():
        versions = {
            lane: Version(lane, len(members), max(pod_warmup(p) for p in members)) for lane, members in lanes.items()
        }
        matching = sorted(
            (b for b in bases if any(_selects(b.selector, labels) for labels in app_labels[app])),
            key=lambda b: (b.name != app, b.name),
        )
        service = matching[0] if matching else None
        apps[app] = App(app, versions, service, tuple(b.name for b in matching[1:]))
    return Inventory(namespace, apps, dict(ready or {}))
