"""The full-link gray scenario of issue #13, end to end on a real data plane.

Services a -> b -> c; gray versions of a and c only. At the edge, ``x-user-id: 100`` colors a request into lane
``gray``: it goes a-gray -> b-base (no gray version: falls back, the tag travels on) -> c-gray; everything else
stays in base, and a client cannot pick a lane by sending the tag itself.

What runs: the Lanes controller exactly as the chart runs it (``python -m webhook.controller --lanes ...``, leader
election included) reconciling real ``Lane`` objects on the real API server; Traefik (built from Go modules)
serving the generated HTTPRoutes on an edge Gateway and on the shared east-west Gateway the sample apps call
(``--lanes-outputs GatewayAPI,EastWest,Istio``: the Istio objects are validated by the API server against Istio's
CRDs; Traefik has no GAMMA, and in production the per-hop rules are enforced by Istio or a GAMMA mesh). Backends
are kwok pods with sample-app processes on their IPs (devtools/dataplane/harness.py: a stand-in for containers
until the real node carries this traffic), so readiness reaches the EndpointSlices through the real
EndpointSlice controller.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devtools.controlplane import ControlPlane
from devtools.dataplane import crds
from devtools.dataplane.harness import MESH_GATEWAY, Apps, DataPlane, eventually
from devtools.dataplane.scenario import BASE, GRAY, LANES, Shop, binomial_bounds
from devtools.local_controller import LocalController
from tests.namespaces import make_namespace
from webhook.kube.client import KubeError

LANE_CRD = Path(__file__).resolve().parents[2] / "charts" / "lanes" / "crds" / "lanes.io_lanes.yaml"


@dataclass
class LaneController:
    process: LocalController
    token: str


@pytest.fixture(scope="module")
def lane_controller(
    control_plane: ControlPlane, k8s: client.ApiClient, dataplane: DataPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LaneController]:
    """``python -m webhook.controller --lanes`` for this module's namespaces (a label only they carry)."""
    crds.install_crds(k8s, [LANE_CRD])
    crds.install_istio(k8s)
    token = uuid.uuid4().hex[:8]
    system = make_namespace(k8s)
    workdir = tmp_path_factory.mktemp("lane-controller")
    process = LocalController(
        [
            f"--kubeconfig={control_plane.kubeconfig}",
            f"--namespace={system}",
            f"--namespace-selector=lanes=enabled,lanes.test/run={token}",
            "--lease-duration=3",
            "--renew-deadline=2",
            "--retry-period=0.4",
            "--lanes",
            "--lanes-outputs=GatewayAPI,EastWest,Istio",
            f"--lanes-east-west-gateway={dataplane.parent_ref(MESH_GATEWAY)['namespace']}/{MESH_GATEWAY}",
        ],
        workdir / "controller.log",
    ).start()
    yield LaneController(process, token)
    process.stop()
    client.CoreV1Api(k8s).delete_namespace(system)


@pytest.fixture
def shop(k8s: client.ApiClient, dataplane: DataPlane, lane_controller: LaneController) -> Iterator[Shop]:
    namespace = make_namespace(k8s, labels={"lanes": "enabled", "lanes.test/run": lane_controller.token})
    apps = Apps(dataplane, namespace)
    shop = Shop.open(apps)
    yield shop
    apps.close()
    shop.delete_all_lanes()  # the controller removes its finalizers; the namespace then goes with everything
    client.CoreV1Api(k8s).delete_namespace(namespace)


def _gray_lane(shop: Shop, **spec: Any) -> None:
    shop.lane("gray", match=[{"headers": [{"name": "x-user-id", "value": "100"}]}], **spec)


def _eventually_path(shop: Shop, headers: dict[str, str] | None, expected: list[str], timeout: float = 20) -> None:
    def check() -> None:
        assert shop.path(headers) == expected

    eventually(check, timeout=timeout)


def test_colored_request_goes_gray_where_there_is_a_gray_version(shop: Shop) -> None:
    _gray_lane(shop)
    _eventually_path(shop, {"x-user-id": "100"}, GRAY)
    answer = shop.request({"x-user-id": "100"})
    for hop in answer.hops():  # the tag and the baggage entry travel through every hop, b-base included
        assert hop["received"]["x-lane"] == "gray", hop
        assert "lanes.lane=gray" in (hop["received"]["baggage"] or ""), hop
    assert [h["path"] for h in answer.hops()] == ["/checkout", "/", "/"]
    for _ in range(20):
        assert shop.path({"x-user-id": "100"}) == GRAY
        assert shop.path() == BASE
        assert shop.path({"x-user-id": "101"}) == BASE


def test_client_cannot_pick_a_lane_by_sending_the_tag(shop: Shop) -> None:
    _gray_lane(shop)
    _eventually_path(shop, {"x-user-id": "100"}, GRAY)
    for spoof in ({"x-lane": "gray"}, {"baggage": "lanes.lane=gray"}, {"x-lane": "gray", "x-user-id": "7"}):
        answer = shop.request(spoof)
        assert answer.path() == BASE, spoof
        assert answer.hops()[0]["received"]["x-lane"] is None, spoof


def _percent_paths(shop: Shop, n: int) -> list[tuple[str, ...]]:
    _gray_lane(shop, percent=10)
    _eventually_path(shop, {"x-user-id": "100"}, GRAY)
    return [tuple(shop.path()) for _ in range(n)]


def test_percent_sends_a_share_of_unmatched_requests_into_the_lane(shop: Shop) -> None:
    n = 1000
    paths = _percent_paths(shop, n)
    entered = sum(1 for p in paths if p[0] == "a-gray")
    low, high = binomial_bounds(n, 0.10)
    assert low <= entered <= high, (entered, low, high)
    assert all(p[0] in ("a-gray", "a-base") for p in paths)
    assert all(p == tuple(BASE) for p in paths if p[0] == "a-base")  # the rest is base all the way


@pytest.mark.xfail(
    strict=True,
    reason="Traefik v3.6 ignores backendRef-level filters (Gateway API extended feature "
    "HTTPRouteBackendRequestHeaderModification; pkg/provider/kubernetes/gateway/httproute.go loadWRRService), and "
    "the Lane's percent share is tagged by one: the share reaches a-gray untagged and leaves the lane at c",
)
def test_percent_share_stays_in_the_lane_on_later_hops(shop: Shop) -> None:
    paths = _percent_paths(shop, 200)
    entered = [p for p in paths if p[0] == "a-gray"]
    assert entered
    assert all(p == tuple(GRAY) for p in entered), {p for p in entered if p != tuple(GRAY)}


def test_lane_version_without_ready_endpoints_falls_back_and_returns(shop: Shop) -> None:
    _gray_lane(shop)
    _eventually_path(shop, {"x-user-id": "100"}, GRAY)
    fallback = ["a-gray", "b-base", "c-base"]

    started = time.monotonic()
    shop.backends["c-gray"].set_ready(False)
    _eventually_path(shop, {"x-user-id": "100"}, fallback, timeout=15)
    print(f"\nfallback to c-base observed {time.monotonic() - started:.2f}s after c-gray's endpoint went unready")
    status = shop.lane_status("gray")
    c = next(s for s in status["services"] if s["name"] == "c")
    assert (c["lane"], c.get("fallback")) == ("base", "NoReadyEndpoints"), c
    assert shop.path() == BASE

    started = time.monotonic()
    shop.backends["c-gray"].set_ready(True)
    _eventually_path(shop, {"x-user-id": "100"}, GRAY, timeout=15)
    print(f"back to c-gray {time.monotonic() - started:.2f}s after it was ready again")

    # scaled to 0 (the pod is gone), then a new pod
    shop.backends.pop("c-gray").stop()
    _eventually_path(shop, {"x-user-id": "100"}, fallback, timeout=15)
    shop.backends["c-gray"] = shop.apps.backend("c", "gray")
    _eventually_path(shop, {"x-user-id": "100"}, GRAY, timeout=15)


def test_second_lane_does_not_interfere(shop: Shop) -> None:
    shop.backends["b-blue"] = shop.apps.backend("b", "blue", calls=["c"])
    _gray_lane(shop)
    shop.lane("blue", match=[{"headers": [{"name": "x-user-id", "value": "200"}]}])
    _eventually_path(shop, {"x-user-id": "200"}, ["a-base", "b-blue", "c-base"])
    _eventually_path(shop, {"x-user-id": "100"}, GRAY)
    for _ in range(10):
        assert shop.path({"x-user-id": "100"}) == GRAY
        assert shop.path({"x-user-id": "200"}) == ["a-base", "b-blue", "c-base"]
        assert shop.path() == BASE
        assert shop.path({"x-lane": "blue"}) == BASE


def test_deleting_a_lane_removes_what_it_generated(shop: Shop) -> None:
    shop.backends["b-blue"] = shop.apps.backend("b", "blue", calls=["c"])
    _gray_lane(shop)
    shop.lane("blue", match=[{"headers": [{"name": "x-user-id", "value": "200"}]}])
    _eventually_path(shop, {"x-user-id": "100"}, GRAY)
    _eventually_path(shop, {"x-user-id": "200"}, ["a-base", "b-blue", "c-base"])
    gray_objects = shop.owned_by("gray")
    assert "Service/a-gray" in gray_objects and "Service/c-gray" in gray_objects, gray_objects

    shop.delete_lane("gray")

    def gray_gone() -> None:
        try:
            shop.kube.get(f"{LANES}/namespaces/{shop.namespace}/lanes/gray")
            raise AssertionError("Lane gray still exists (its finalizer is held until its objects are gone)")
        except KubeError as exc:
            assert exc.status == 404, exc
        names = shop.generated_names()
        assert not names & {"Service/a-gray", "Service/c-gray"}, names
        assert not any(n.startswith("HTTPRoute/gray") for n in names), names

    eventually(gray_gone, timeout=20)
    # the colored user is base all the way now; blue is untouched
    _eventually_path(shop, {"x-user-id": "100"}, BASE)
    assert shop.path({"x-user-id": "200"}) == ["a-base", "b-blue", "c-base"]

    shop.delete_lane("blue")

    def all_gone() -> None:
        left = {kind: [o["metadata"]["name"] for o in items] for kind, items in shop.generated().items() if items}
        assert left == {}, left

    eventually(all_gone, timeout=20)


def test_strict_mode_with_a_missing_service_generates_nothing(shop: Shop) -> None:
    _gray_lane(shop, mode="Strict")

    def reported() -> dict[str, Any]:
        status = shop.lane_status("gray")
        ready = next((c for c in status.get("conditions") or () if c["type"] == "Ready"), None)
        assert ready is not None and ready["status"] == "False", status
        assert ready["reason"] == "MissingServices", ready
        assert "b" in ready["message"], ready
        return status

    status = eventually(reported, timeout=20)
    assert shop.owned_by("gray") == [], status
    assert shop.request({"x-user-id": "100"}).status == 404  # no edge route for the lane's hostname at all
