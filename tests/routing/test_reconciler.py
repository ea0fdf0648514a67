"""The Lane reconciler against the real API server, with the Gateway API and Istio CRDs installed: what it
generates is accepted by the real schemas, it writes nothing when nothing changed, it cleans up after itself,
and it falls back (and back) when a lane version loses (regains) its ready endpoints."""

from __future__ import annotations

import time
from typing import Any

from tests.controller.support import wait_for
from tests.routing.conftest import Routing
from webhook.controller.routing.render import RenderOptions
from webhook.controller.routing.spec import ParentRef
from webhook.kube.client import KubeError

ALL_OUTPUTS = ["GatewayAPI", "Istio", "GAMMA", "EastWest"]
EDGE = {"parentRefs": [{"name": "edge", "namespace": "gateways"}], "hostnames": ["base.example.com"]}
MESH = {"parentRefs": [{"name": "mesh", "namespace": "gateways"}]}


def gray_spec(**extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "services": ["a", "b", "c"],
        "match": [{"headers": [{"name": "x-user-id", "value": "100"}]}],
        "entry": {"service": "a", "port": 8080},
        "gateway": EDGE,
        "outputs": ALL_OUTPUTS,
        "eastWest": MESH,
    }
    spec.update(extra)
    return spec


def converged(routing: Routing, name: str = "gray") -> dict[str, Any]:
    """The Lane once its status describes its current generation and every lane version is ready."""

    def check() -> dict[str, Any] | None:
        lane = routing.lane(name)
        status = lane.get("status") or {}
        if status.get("observedGeneration") != lane["metadata"]["generation"]:
            return None
        degraded = next((c for c in status.get("conditions", []) if c["type"] == "Degraded"), {})
        return lane if degraded.get("status") == "False" else None

    return wait_for(check, 30, f"Lane {name} reconciled and not degraded")


def vs_lanes(routing: Routing, service: str) -> list[str]:
    vs = routing.kube.get(
        f"/apis/networking.istio.io/v1/namespaces/{routing.namespace}/virtualservices/{service}-lanes"
    )
    return [rule["name"] for rule in vs["spec"]["http"]]


def events(routing: Routing, reason: str) -> list[dict[str, Any]]:
    items = routing.kube.get(f"/api/v1/namespaces/{routing.namespace}/events").get("items") or []
    return [e for e in items if e.get("reason") == reason and e["involvedObject"].get("kind") == "Lane"]


def test_scenario_objects_are_generated_and_accepted_by_the_real_schemas(routing: Routing) -> None:
    routing.scenario()
    reconciler = routing.reconciler()
    routing.create_lane("gray", **gray_spec())
    lane = converged(routing)
    generated = routing.generated()
    expected = {
        ("Service", "a-base"), ("Service", "a-gray"), ("Service", "b-base"), ("Service", "c-base"),
        ("Service", "c-gray"), ("HTTPRoute", "gray-edge"), ("DestinationRule", "a-lanes"),
        ("VirtualService", "a-lanes"), ("DestinationRule", "b-lanes"), ("VirtualService", "b-lanes"),
        ("DestinationRule", "c-lanes"), ("VirtualService", "c-lanes"),
        ("HTTPRoute", "a-lanes-mesh"), ("HTTPRoute", "b-lanes-mesh"), ("HTTPRoute", "c-lanes-mesh"),
        ("HTTPRoute", "a-lanes-eastwest"), ("HTTPRoute", "b-lanes-eastwest"), ("HTTPRoute", "c-lanes-eastwest"),
    }  # fmt: skip
    assert set(generated) == expected
    uid = lane["metadata"]["uid"]
    for obj in generated.values():
        assert [ref["uid"] for ref in obj["metadata"]["ownerReferences"]] == [uid]
    assert lane["metadata"]["finalizers"] == ["lanes.io/generated-objects"]
    status = lane["status"]
    assert status["inLane"] == "2/3"
    assert {s["name"]: s["lane"] for s in status["services"]} == {"a": "gray", "b": "base", "c": "gray"}
    assert {s["name"]: s["readyEndpoints"] for s in status["services"]} == {"a": 1, "b": 1, "c": 1}
    assert vs_lanes(routing, "a") == ["lane-gray", "baseline"] and vs_lanes(routing, "b") == ["baseline"]
    dr = generated[("DestinationRule", "a-lanes")]
    gray = next(s for s in dr["spec"]["subsets"] if s["name"] == "gray")
    assert gray["trafficPolicy"]["loadBalancer"]["warmupDurationSecs"] == "30s"
    assert reconciler.writes_in(routing.namespace).deletes == 0


def test_a_resync_and_a_fresh_reconciler_write_nothing(routing: Routing) -> None:
    routing.scenario()
    first = routing.reconciler()
    routing.create_lane("gray", **gray_spec())
    converged(routing)
    time.sleep(1.0)  # our own writes come back through the watches and are re-rendered: still nothing to write
    settled = first.writes_in(routing.namespace).total
    reconciles = first.reconciles
    for _ in range(3):
        first.resync()
        time.sleep(0.3)
    wait_for(lambda: first.reconciles >= reconciles + 1 and len(first.queue) == 0, 10, "resyncs processed")
    assert first.writes_in(routing.namespace).total == settled, first.writes_in(routing.namespace)
    first.stop()
    second = routing.reconciler()
    second.resync()
    wait_for(lambda: second.reconciles >= 1 and len(second.queue) == 0, 10, "fresh reconciler ran")
    time.sleep(0.5)
    assert second.writes_in(routing.namespace).total == 0, second.writes_in(routing.namespace)


def test_deleting_the_lane_removes_everything_it_generated(routing: Routing) -> None:
    routing.scenario()
    routing.reconciler()
    routing.create_lane("gray", **gray_spec())
    converged(routing)
    assert routing.generated()
    routing.kube.delete(routing.lanes_path("gray"))

    def gone() -> bool:
        try:
            routing.lane("gray")
            return False
        except KubeError as exc:
            return exc.status == 404

    wait_for(gone, 30, "the Lane gone (finalizer removed)")
    assert routing.generated() == {}


def test_fallback_when_a_lane_version_loses_its_ready_endpoints_and_back(routing: Routing) -> None:
    routing.scenario()
    pods = routing.kube.get(
        f"/api/v1/namespaces/{routing.namespace}/pods", {"labelSelector": "lanes.io/app=c,lanes.io/lane=gray"}
    )
    c_gray = pods["items"][0]["metadata"]["name"]
    routing.reconciler()
    routing.create_lane("gray", **gray_spec())
    converged(routing)
    assert vs_lanes(routing, "c") == ["lane-gray", "baseline"]

    started = time.monotonic()
    routing.set_ready(c_gray, False)
    wait_for(lambda: vs_lanes(routing, "c") == ["baseline"], 20, "c's gray rule dropped")
    fell_back = time.monotonic() - started
    mesh = routing.kube.get(
        f"/apis/gateway.networking.k8s.io/v1/namespaces/{routing.namespace}/httproutes/c-lanes-eastwest"
    )
    assert [r["backendRefs"][0]["name"] for r in mesh["spec"]["rules"]] == ["c-base"]
    status = wait_for(
        lambda: next((s for s in routing.lane()["status"]["services"] if s["name"] == "c" and s.get("fallback")), None),
        20,
        "status shows c falling back",
    )
    assert status["fallback"] == "NoReadyEndpoints" and status["lane"] == "base"
    wait_for(lambda: events(routing, "LaneFallback"), 20, "a LaneFallback event")
    assert vs_lanes(routing, "a") == ["lane-gray", "baseline"]  # the others stay in the lane

    started = time.monotonic()
    routing.set_ready(c_gray, True)
    wait_for(lambda: vs_lanes(routing, "c") == ["lane-gray", "baseline"], 20, "c's gray rule back")
    restored = time.monotonic() - started
    wait_for(lambda: events(routing, "LaneRestored"), 20, "a LaneRestored event")
    converged(routing)
    print(f"\nfallback applied {fell_back:.2f}s after the pod went unready; restored {restored:.2f}s after ready")


def test_strict_lane_with_a_missing_service_generates_nothing(routing: Routing) -> None:
    routing.scenario()
    reconciler = routing.reconciler()
    routing.create_lane("gray", **gray_spec(mode="Strict"))

    def blocked() -> dict[str, Any] | None:
        status = routing.lane().get("status") or {}
        ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
        return ready if ready.get("reason") == "MissingServices" else None

    ready = wait_for(blocked, 30, "Strict lane reported as missing b")
    assert ready["status"] == "False" and "b" in ready["message"]
    assert routing.generated() == {}
    assert reconciler.writes_in(routing.namespace).applies == 0


def test_two_lanes_share_per_service_objects_without_interfering(routing: Routing) -> None:
    routing.scenario()
    routing.pod("b", "blue")
    routing.reconciler()
    routing.create_lane("gray", **gray_spec())
    routing.create_lane("blue", services=["b"], outputs=["Istio"])
    converged(routing, "gray")
    converged(routing, "blue")
    wait_for(lambda: vs_lanes(routing, "b") == ["lane-blue", "baseline"], 10, "b routes blue")
    assert vs_lanes(routing, "a") == ["lane-gray", "baseline"]
    b_vs = routing.generated()[("VirtualService", "b-lanes")]
    assert sorted(ref["name"] for ref in b_vs["metadata"]["ownerReferences"]) == ["blue", "gray"]
    routing.kube.delete(routing.lanes_path("blue"))
    wait_for(lambda: vs_lanes(routing, "b") == ["baseline"], 20, "blue's rule gone, gray's objects kept")
    b_vs = routing.generated()[("VirtualService", "b-lanes")]
    assert [ref["name"] for ref in b_vs["metadata"]["ownerReferences"]] == ["gray"]
    assert ("Service", "b-blue") not in routing.generated()


def test_drift_is_repaired_and_a_users_object_is_never_taken_over(routing: Routing) -> None:
    routing.scenario()
    # A Service the user made, with the name the lane would generate for c: reported, left alone.
    routing.kube.create(
        f"/api/v1/namespaces/{routing.namespace}/services",
        {"metadata": {"name": "c-gray"}, "spec": {"selector": {"app": "mine"}, "ports": [{"port": 80}]}},
    )
    routing.reconciler()
    routing.create_lane("gray", **gray_spec())
    wait_for(lambda: ("VirtualService", "a-lanes") in routing.generated(), 30, "objects generated")
    mine = routing.kube.get(f"/api/v1/namespaces/{routing.namespace}/services/c-gray")
    assert mine["spec"]["selector"] == {"app": "mine"}
    assert "lanes.io/generated" not in (mine["metadata"].get("labels") or {})

    def taken() -> dict[str, object] | None:
        conditions = (routing.lane().get("status") or {}).get("conditions") or []
        degraded = next((c for c in conditions if c["type"] == "Degraded"), {})
        return degraded if degraded.get("reason") == "NameTaken" else None

    assert "Service/c-gray" in str(wait_for(taken, 10, "status naming the taken name")["message"])
    # Drift: a generated object deleted by hand comes back.
    routing.kube.delete(f"/apis/networking.istio.io/v1/namespaces/{routing.namespace}/virtualservices/a-lanes")
    wait_for(lambda: ("VirtualService", "a-lanes") in routing.generated(), 10, "VirtualService recreated")


def test_default_east_west_gateway_and_outputs_come_from_the_options(routing: Routing) -> None:
    routing.scenario()
    options = RenderOptions(outputs=("EastWest",), east_west=(ParentRef("mesh", "gateways"),))
    routing.reconciler(options)
    routing.create_lane("gray", services=["a", "c"])
    converged(routing)
    kinds = {kind for kind, _ in routing.generated()}
    assert kinds == {"Service", "HTTPRoute"}
    route = routing.generated()[("HTTPRoute", "c-lanes-eastwest")]
    assert route["spec"]["parentRefs"][0]["name"] == "mesh"
    assert route["spec"]["hostnames"][0] == "c"
