"""A Deployment rollout waits for the gate: the old ReplicaSet shrinks only as new pods are registered."""

from __future__ import annotations

import time
from typing import Any

from tests.controller.conftest import Env
from tests.controller.support import condition_status, pinned_template, running_controller, status_annotation, wait_for
from webhook.contract import names

REPLICAS = 2
DELAY = 2.0


def deployment(node: str, version: str) -> dict[str, Any]:
    labels = {"app": "web"}
    annotations = {names.ANN_STATUS: status_annotation(DELAY), "version": version}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": pinned_template(node, labels, annotations),
        },
    }


def test_rollout_scales_the_old_replicaset_down_only_after_new_pods_pass_the_gate(env: Env) -> None:
    ns = env.namespace()
    apps = f"/apis/apps/v1/namespaces/{ns}"
    with running_controller(env.settings(), env.kubeconfig) as controller:
        wait_for(lambda: controller.is_leader, 10, "leadership")
        env.kube.create(f"{apps}/deployments", deployment(env.node, "1"))

        def available(generation_version: str) -> bool:
            d = env.kube.get(f"{apps}/deployments/web")
            status = d.get("status") or {}
            return (
                status.get("observedGeneration") == d["metadata"]["generation"]
                and status.get("updatedReplicas") == REPLICAS
                and status.get("availableReplicas") == REPLICAS
                and status.get("replicas") == REPLICAS
                and d["spec"]["template"]["metadata"]["annotations"]["version"] == generation_version
            )

        wait_for(lambda: available("1"), 60, "first version available")
        old_rs = env.kube.get(f"{apps}/replicasets")["items"][0]["metadata"]["name"]

        env.kube.patch(
            f"{apps}/deployments/web", {"spec": {"template": {"metadata": {"annotations": {"version": "2"}}}}}
        )
        started = time.monotonic()
        snapshots: list[tuple[float, int, int, int]] = []  # (t, old spec replicas, new spec replicas, new registered)
        while time.monotonic() - started < 60:
            # ReplicaSets first, pods second: a scale-down seen here happened before the pods are read.
            replicasets = {rs["metadata"]["name"]: rs for rs in env.kube.get(f"{apps}/replicasets")["items"]}
            pods = env.kube.get(f"/api/v1/namespaces/{ns}/pods")["items"]
            new_names = [name for name in replicasets if name != old_rs]
            new_rs = new_names[0] if new_names else None
            registered = sum(
                1
                for p in pods
                if new_rs
                and p["metadata"].get("ownerReferences", [{}])[0].get("name") == new_rs
                and condition_status(p, names.CONDITION_REGISTERED) == "True"
            )
            old_spec = replicasets[old_rs]["spec"]["replicas"]
            new_spec = replicasets[new_rs]["spec"]["replicas"] if new_rs else 0
            snapshots.append((time.monotonic() - started, old_spec, new_spec, registered))
            if old_spec == 0 and available("2"):
                break
            time.sleep(0.05)
        duration = snapshots[-1][0]

    assert snapshots[-1][1] == 0, f"rollout did not finish: {snapshots[-5:]}"
    # Never fewer than REPLICAS registered-or-old pods: the old ReplicaSet shrank only behind registered pods.
    for moment, old_spec, _new_spec, registered in snapshots:
        assert old_spec + registered >= REPLICAS, f"old RS at {old_spec} with {registered} registered at {moment:.2f}s"
    # The transitions of the old ReplicaSet: 2 -> 1 -> 0, each step only after a new pod was registered.
    steps = [s[1] for s in snapshots]
    assert [v for i, v in enumerate(steps) if i == 0 or v != steps[i - 1]] == [2, 1, 0]
    # and the new one grew one surge pod at a time (maxSurge 1)
    assert max(s[2] for s in snapshots) == REPLICAS
    assert all(old + new <= REPLICAS + 1 for _, old, new, _ in snapshots)
    # Two new pods, one after the other, each held for the register delay.
    assert duration >= 2 * DELAY - 0.5, f"rollout took {duration:.2f}s, faster than two register delays"
