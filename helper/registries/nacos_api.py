"""The Nacos HTTP API calls the agent makes, as pure request descriptions, for a 2.x and a 3.x server.

One interface, two dialects (``api=v2`` / ``api=v3`` in ``lanes.io/registry``):

============  =====================================================  ============================================
operation     Nacos 2.x (``v2``: the v1 open API, all of it in 2.3)  Nacos 3.x (``v3``: the admin API)
============  =====================================================  ============================================
login         ``POST /v1/auth/login``                                ``POST /v3/auth/user/login``
register      ``POST /v1/ns/instance`` (ephemeral)                   ``POST /v3/admin/ns/instance`` (persistent)
heartbeat     ``PUT /v1/ns/instance/beat``                           none: a persistent instance needs none
find          ``GET /v1/ns/instance/list``                           ``GET /v3/admin/ns/instance/list``
patch         ``PATCH /v1/ns/instance`` (only the given fields)      ``PUT /v3/admin/ns/instance/partial`` (weight,
                                                                     enabled and metadata all required)
deregister    ``DELETE /v1/ns/instance``                             ``DELETE /v3/admin/ns/instance``
============  =====================================================  ============================================

Traps this follows (shared/notes/nacos.md): ``PUT /v1/ns/instance`` is a full replace (omitted fields reset), so
weight and enabled changes use PATCH, which also works on instances an app registered itself over gRPC; DELETE
answers ``ok`` for a gRPC-registered instance and does nothing, so ``manage`` mode disables instead. A heartbeat
carries no ``beat`` body: with one, a 2.x server re-creates an instance that was just deleted. Every parameter
goes in the query string (Tomcat parses form bodies of POST only); credentials go in a body (login) or the
``accessToken`` header, never in a URL, so they stay out of access logs.

The 3.x dialect is checked for request shape against a recording server only: no 3.x server can be had here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlencode

from helper.record import record
from helper.registries.nacos_url import NacosTarget


@record(frozen=True, slots=True)
class Call:
    """One HTTP request: method, path (with query) and an optional form body."""

    method: str
    path: str
    body: bytes = b""

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("Content-Type", "application/x-www-form-urlencoded"),) if self.body else ()


def _path(target: NacosTarget, tail: str, params: Mapping[str, object]) -> str:
    query = urlencode({key: _text(value) for key, value in params.items() if value is not None})
    return f"{target.context}{tail}" + (f"?{query}" if query else "")


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _instance(target: NacosTarget, ip: str, port: int, *, v3: bool) -> dict[str, object]:
    """The parameters naming one instance (v3 takes group and bare service; v1 the grouped name)."""
    params: dict[str, object] = {"namespaceId": target.namespace or None}
    if v3:
        params |= {"groupName": target.group, "serviceName": target.service}
    else:
        params |= {"serviceName": target.grouped_service}
    return params | {"clusterName": target.cluster, "ip": ip, "port": port}


def login(target: NacosTarget, username: str, password: str) -> Call:
    tail = "/v3/auth/user/login" if target.api == "v3" else "/v1/auth/login"
    return Call("POST", f"{target.context}{tail}", urlencode({"username": username, "password": password}).encode())


def register(target: NacosTarget, ip: str, port: int, weight: float, metadata: Mapping[str, str]) -> Call:
    v3 = target.api == "v3"
    params = _instance(target, ip, port, v3=v3) | {
        "weight": weight,
        "enabled": True,
        "healthy": True,
        "ephemeral": not v3,
        "metadata": dict(metadata),
    }
    return Call("POST", _path(target, "/v3/admin/ns/instance" if v3 else "/v1/ns/instance", params))


def heartbeat(target: NacosTarget, ip: str, port: int) -> Call | None:
    """The keep-alive of an ephemeral HTTP-registered instance (2.x); None for 3.x (persistent instances)."""
    if target.api == "v3":
        return None
    return Call("PUT", _path(target, "/v1/ns/instance/beat", _instance(target, ip, port, v3=False)))


def find(target: NacosTarget) -> Call:
    """The instances of the service, including unhealthy ones (2.x hides disabled ones from this list)."""
    v3 = target.api == "v3"
    params: dict[str, object] = {"namespaceId": target.namespace or None}
    if v3:
        params |= {"groupName": target.group, "serviceName": target.service, "clusterName": target.cluster}
        return Call("GET", _path(target, "/v3/admin/ns/instance/list", params | {"healthyOnly": False}))
    params |= {"serviceName": target.grouped_service, "clusters": target.cluster, "healthyOnly": False}
    return Call("GET", _path(target, "/v1/ns/instance/list", params))


def patch(
    target: NacosTarget,
    ip: str,
    port: int,
    *,
    weight: float,
    enabled: bool,
    metadata: Mapping[str, str] | None = None,
) -> Call:
    """Change weight and enabled (and merge metadata) of one instance, leaving everything else as it is."""
    if target.api == "v3":
        params: dict[str, object] = {
            "namespaceId": target.namespace or None,
            "serviceName": target.grouped_service,
            "cluster": target.cluster,
            "ip": ip,
            "port": port,
            "weight": weight,
            "enabled": enabled,
            "metadata": dict(metadata or {}),
        }
        return Call("PUT", _path(target, "/v3/admin/ns/instance/partial", params))
    params = _instance(target, ip, port, v3=False) | {"weight": weight, "enabled": enabled}
    if metadata:
        params["metadata"] = dict(metadata)
    return Call("PATCH", _path(target, "/v1/ns/instance", params))


def deregister(target: NacosTarget, ip: str, port: int) -> Call:
    v3 = target.api == "v3"
    params = _instance(target, ip, port, v3=v3) | {"ephemeral": not v3}
    return Call("DELETE", _path(target, "/v3/admin/ns/instance" if v3 else "/v1/ns/instance", params))


def hosts(target: NacosTarget, answer: object) -> list[dict[str, object]]:
    """The instance list out of a ``find`` answer (v1: ``{"hosts": [...]}``; v3: ``{"data": {"hosts": ...}}``)."""
    if isinstance(answer, dict) and target.api == "v3":
        answer = answer.get("data")
    if isinstance(answer, dict):
        found = answer.get("hosts")
        if isinstance(found, list):
            return [host for host in found if isinstance(host, dict)]
    return []
