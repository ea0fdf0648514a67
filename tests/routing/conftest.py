"""Fixtures of the lane-routing tests on the real API server: the Lane CRD (from the chart), the Gateway API and
Istio CRDs (from their Go modules, devtools/dataplane/crds.py), a kwok node that runs the pods, and a Lane
reconciler running as a user bound to exactly its documented RBAC rules (webhook.controller.rbac.routing_rules).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as kube_config

from devtools.controlplane import ControlPlane
from devtools.controlplane.binaries import REPO_ROOT
from tests.controller.support import restricted_kubeconfig, wait_for
from tests.namespaces import make_namespace
from webhook.controller.events import EventRecorder
from webhook.controller.rbac import routing_rules
from webhook.controller.routing.reconciler import LaneReconciler
from webhook.controller.routing.render import RenderOptions
from webhook.controller.routing.settings import ReconcilerSettings
from webhook.kube.client import Kube, KubeError, path_segment

LANE_CRD = REPO_ROOT / "charts" / "lanes" / "crds" / "lanes.io_lanes.yaml"
NODE = "lanes-routing-kwok"
SERVING_GATE = "lanes.test/serving"
LANES = "/apis/lanes.io/v1alpha1"


@pytest.fixture(scope="session")
def routing_crds(control_plane: ControlPlane, k8s: Any) -> list[str]:
    """Lane + Gateway API (standard) + Istio CRDs, installed and Established."""
    from devtools.dataplane import crds

    try:
        paths = [LANE_CRD, *crds.gateway_api_crds(), *crds.istio_crds()]
    except crds.CRDError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Gateway API / Istio CRDs unavailable in CI: {exc}", pytrace=False)
        pytest.skip(f"!!! SKIPPING lane-routing API tests: {exc} !!!")
    return crds.install_crds(k8s, paths)


@pytest.fixture(scope="session")
def kwok_node(control_plane: ControlPlane, k8s: Any) -> Iterator[str]:
    kube = Kube(k8s)
    body = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE, "annotations": {"kwok.x-k8s.io/node": "fake"}, "labels": {"type": "kwok"}},
    }
    with contextlib.suppress(KubeError):
        kube.create("/api/v1/nodes", body)
    yield NODE
    with contextlib.suppress(KubeError):
        kube.delete(f"/api/v1/nodes/{NODE}")


@dataclass
class Routing:
    """One test's namespace, the admin client, and helpers to run workloads and a reconciler there."""

    control_plane: ControlPlane
    kube: Kube
    namespace: str
    node: str
    workdir: Path
    reconcilers: list[LaneReconciler] = field(default_factory=list)

    # -- workloads ---------------------------------------------------------------------------------------------

    def pod(self, app: str, lane: str = "base", *, ready: bool = True, warmup: str | None = None) -> str:
        name = f"{app}-{lane}-{uuid.uuid4().hex[:5]}"
        annotations = {"lanes.io/warmup": warmup} if warmup else {}
        self.kube.create(
            f"/api/v1/namespaces/{self.namespace}/pods",
            {
                "metadata": {
                    "name": name,
                    "labels": {"app": app, "lanes.io/app": app, "lanes.io/lane": lane},
                    "annotations": annotations,
                },
                "spec": {
                    "nodeName": self.node,
                    "containers": [{"name": "app", "image": "sample-app", "ports": [{"containerPort": 8080}]}],
                    "readinessGates": [{"conditionType": SERVING_GATE}],
                    "terminationGracePeriodSeconds": 0,
                },
            },
        )
        if ready:
            self.set_ready(name, True)
        return name

    def set_ready(self, pod: str, ready: bool) -> None:
        """The serving gate (kwok then computes Ready on the way up; going down, Ready is set too, as the kubelet
        would at once)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        value = "True" if ready else "False"
        conditions = [{"type": SERVING_GATE, "status": value, "lastTransitionTime": now}]
        if not ready:
            conditions.append({"type": "Ready", "status": "False", "reason": "Test", "lastTransitionTime": now})
        path = f"/api/v1/namespaces/{self.namespace}/pods/{path_segment(pod)}/status"
        wait_for(lambda: self.kube.get(path).get("status", {}).get("podIP"), 30, f"pod {pod} running on kwok")
        self.kube.patch(path, {"status": {"conditions": conditions}})

    def service(self, app: str, port: int = 8080) -> None:
        self.kube.create(
            f"/api/v1/namespaces/{self.namespace}/services",
            {"metadata": {"name": app}, "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": port}]}},
        )

    def scenario(self) -> None:
        """a -> b -> c in base; a and c also in gray; all ready."""
        for app in "abc":
            self.service(app)
            self.pod(app)
        self.pod("a", "gray", warmup="30s")
        self.pod("c", "gray")

    # -- Lanes -----------------------------------------------------------------------------------------------------

    def lanes_path(self, name: str | None = None) -> str:
        base = f"{LANES}/namespaces/{self.namespace}/lanes"
        return f"{base}/{name}" if name else base

    def create_lane(self, name: str = "gray", **spec: Any) -> dict[str, Any]:
        body = {"apiVersion": "lanes.io/v1alpha1", "kind": "Lane", "metadata": {"name": name}, "spec": spec}
        return self.kube.create(self.lanes_path(), body)

    def lane(self, name: str = "gray") -> dict[str, Any]:
        return self.kube.get(self.lanes_path(name))

    def generated(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every object labeled lanes.io/generated=true in the namespace, by (kind, name)."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        ns = self.namespace
        for kind, path in (
            ("Service", f"/api/v1/namespaces/{ns}/services"),
            ("HTTPRoute", f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"),
            ("DestinationRule", f"/apis/networking.istio.io/v1/namespaces/{ns}/destinationrules"),
            ("VirtualService", f"/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices"),
        ):
            for item in self.kube.get(path, {"labelSelector": "lanes.io/generated=true"}).get("items") or []:
                out[(kind, item["metadata"]["name"])] = item
        return out

    # -- the reconciler --------------------------------------------------------------------------------------------

    def reconciler(self, options: RenderOptions | None = None, **kw: Any) -> LaneReconciler:
        """A started reconciler, authenticated as a user bound to exactly ``routing_rules()``."""
        user = f"lanes-routing-{uuid.uuid4().hex[:6]}"
        grant_routing(self.kube, user)
        kubeconfig = restricted_kubeconfig(self.control_plane, user, self.workdir / user)
        kube = Kube(kube_config.new_client_from_config(config_file=str(kubeconfig)))
        settings = ReconcilerSettings(options=options or RenderOptions(), workers=2, resync=kw.pop("resync", 600.0))
        reconciler = LaneReconciler(kube, settings=settings, recorder=EventRecorder(kube, "test"), **kw)
        reconciler.start()
        self.reconcilers.append(reconciler)
        assert reconciler.wait_synced(30), "reconciler caches did not sync"
        return reconciler

    def stop(self) -> None:
        for reconciler in self.reconcilers:
            reconciler.stop()
            reconciler.join(5)


def grant_routing(kube: Kube, user: str) -> None:
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    name = f"{user}-routing"
    # routing_rules() plus the pod watch, which the controller has anyway (cluster_rules) and shares with routing
    pods = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    kube.create(f"{rbac}/clusterroles", {"metadata": {"name": name}, "rules": [*routing_rules(), pods]})
    kube.create(
        f"{rbac}/clusterrolebindings",
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )


@pytest.fixture
def routing(
    control_plane: ControlPlane, k8s: Any, routing_crds: list[str], kwok_node: str, tmp_path: Path
) -> Iterator[Routing]:
    kube = Kube(k8s)
    namespace = make_namespace(k8s)
    env = Routing(control_plane, kube, namespace, kwok_node, tmp_path)
    yield env
    env.stop()
    # Lanes keep a finalizer: without a reconciler, take it off so the namespace can go.
    with contextlib.suppress(KubeError):
        for lane in kube.get(env.lanes_path()).get("items") or []:
            kube.patch(env.lanes_path(lane["metadata"]["name"]), {"metadata": {"finalizers": None}}, "merge")
    with contextlib.suppress(KubeError):
        kube.delete(f"/api/v1/namespaces/{namespace}")
