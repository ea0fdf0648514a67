"""The data plane itself: hand-written Gateway API routes carry real HTTP through Traefik to the sample apps.

These pin what the Lane reconciler relies on: header matches, RequestHeaderModifier (set on one rule, remove on
the catch-all), weighted backendRefs, routing through the shared east-west Gateway by Host header, and endpoints
leaving and rejoining as readiness flips. Backends are kwok pods with sample-app processes (see the harness).
"""

from __future__ import annotations

from typing import Any

from devtools.dataplane.harness import EDGE_GATEWAY, MESH_GATEWAY, Apps, DataPlane, eventually
from devtools.dataplane.scenario import binomial_bounds


def _host(apps: Apps) -> str:
    """Each test's own hostname on the shared edge Gateway (a namespace being deleted may still hold a route)."""
    return f"{apps.namespace}.example.com"


def _lane_service(apps: Apps, name: str, app: str, lane: str) -> None:
    apps.service(name, selector={"app": app, "lanes.io/lane": lane})


def _route(dataplane: DataPlane, name: str, gateway: str, hostnames: list[str], rules: list[Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [dataplane.parent_ref(gateway)], "hostnames": hostnames, "rules": rules},
    }


def _backend(name: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "port": 8080}
    if weight is not None:
        ref["weight"] = weight
    return ref


def _modifier(change: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": change}


def test_header_match_header_modifier_and_weights(dataplane: DataPlane, apps: Apps) -> None:
    apps.backend("web", "base")
    apps.backend("web", "gray")
    _lane_service(apps, "web-base", "web", "base")
    _lane_service(apps, "web-gray", "web", "gray")
    set_gray = _modifier({"set": [{"name": "x-lane", "value": "gray"}]})
    remove_tag = _modifier({"remove": ["x-lane"]})
    apps.apply(
        _route(
            dataplane,
            "web",
            EDGE_GATEWAY,
            [_host(apps)],
            [
                {
                    "matches": [{"headers": [{"name": "x-user-id", "value": "100"}]}],
                    "filters": [set_gray],
                    "backendRefs": [_backend("web-gray")],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "filters": [remove_tag],
                    "backendRefs": [_backend("web-base", 90), _backend("web-gray", 10)],
                },
            ],
        )
    )

    def colored() -> None:
        answer = apps.request("/x", {"x-user-id": "100"}, host=_host(apps))
        assert answer.status == 200, answer.body
        assert (answer.json["lane"], answer.json["received"]["x-lane"]) == ("gray", "gray")

    eventually(colored, timeout=15)
    for _ in range(20):
        colored()

    # a client-sent tag is removed on the catch-all; ~10 % of the rest reach gray
    n = 400
    lanes = []
    for _ in range(n):
        answer = apps.request("/y", {"x-lane": "gray"}, host=_host(apps))
        assert answer.status == 200, answer.body
        assert answer.json["received"]["x-lane"] is None
        assert answer.json["path"] == "/y"
        lanes.append(answer.json["lane"])
    low, high = binomial_bounds(n, 0.10)
    assert low <= lanes.count("gray") <= high, (lanes.count("gray"), low, high)
    assert lanes.count("base") + lanes.count("gray") == n


def test_east_west_gateway_routes_by_host_header(dataplane: DataPlane, apps: Apps) -> None:
    """``front`` calls ``b`` through the shared gateway (``CALL=b.<ns>@http://<mesh>/``): the Host header selects
    b's route."""
    apps.service("front")
    apps.service("b")
    apps.backend("front", calls=["b"])
    apps.backend("b")
    apps.apply(_route(dataplane, "front", EDGE_GATEWAY, [_host(apps)], [{"backendRefs": [_backend("front")]}]))
    apps.apply(_route(dataplane, "b", MESH_GATEWAY, [f"b.{apps.namespace}"], [{"backendRefs": [_backend("b")]}]))

    def through() -> None:
        answer = apps.request("/", {"x-lane": "blue"}, host=_host(apps))
        assert answer.status == 200, answer.body
        assert answer.path() == ["front-base", "b-base"]
        assert answer.hops()[1]["received"]["x-lane"] == "blue"  # the app forwarded the tag

    eventually(through, timeout=15)


def test_endpoints_follow_readiness(dataplane: DataPlane, apps: Apps) -> None:
    """Readiness flips reach Traefik through the EndpointSlice controller: not ready -> no endpoint -> 503."""
    apps.service("web")
    backend = apps.backend("web")
    apps.apply(_route(dataplane, "web", EDGE_GATEWAY, [_host(apps)], [{"backendRefs": [_backend("web")]}]))

    def status(expected: int) -> None:
        assert apps.request("/", host=_host(apps)).status == expected

    eventually(lambda: status(200), timeout=15)
    backend.set_ready(False)
    eventually(lambda: status(503), timeout=10)
    backend.set_ready(True)
    eventually(lambda: status(200), timeout=10)
