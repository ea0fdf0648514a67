"""The readiness gate keeps seeing pods for the whole leader term, as the chart runs it: Lane routing on (its
reconciler shares the term's pod watch), pods created long after the start, a ``kubectl rollout restart``."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from devtools.controlplane.binaries import REPO_ROOT
from devtools.dataplane.crds import install_crds
from tests.controller.conftest import Env
from tests.controller.support import condition_status, pinned_template, running_controller, status_annotation, wait_for
from webhook.contract import names
from webhook.controller.routing.settings import ReconcilerSettings
from webhook.controller.settings import RepairMode, RepairSettings

LANE_CRD = REPO_ROOT / "charts" / "lanes" / "crds" / "lanes.io_lanes.yaml"
DELAY = 1.0


def deployment(node: str, replicas: int) -> dict[str, Any]:
    labels = {"app": "web", names.LABEL_APP: "web"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": pinned_template(node, labels, {names.ANN_STATUS: status_annotation(DELAY)}),
        },
    }


def rolled_out(env: Env, ns: str, replicas: int) -> bool:
    d = env.kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    status = d.get("status") or {}
    return (
        status.get("observedGeneration") == d["metadata"]["generation"]
        and status.get("updatedReplicas") == replicas
        and status.get("availableReplicas") == replicas
        and status.get("replicas") == replicas
    )


def test_rollout_restart_with_lane_routing_on_passes_the_gate(env: Env, k8s: Any) -> None:
    install_crds(k8s, [LANE_CRD])
    ns = env.namespace()
    settings = env.settings(routing=ReconcilerSettings(), repair=RepairSettings(mode=RepairMode.REPORT))
    with running_controller(settings, env.kubeconfig) as controller:
        wait_for(lambda: controller.is_leader, 10, "leadership")
        env.kube.create(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment(env.node, 3))
        wait_for(lambda: rolled_out(env, ns, 3), 60, "first version available")
        restarted = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": restarted}}}}}
        env.kube.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/web", patch, "strategic")
        time.sleep(1)
        wait_for(lambda: rolled_out(env, ns, 3), 60, "restarted version available")
        pods = env.kube.get(f"/api/v1/namespaces/{ns}/pods")["items"]
        assert all(condition_status(p, names.CONDITION_REGISTERED) == "True" for p in pods)
