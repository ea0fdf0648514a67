"""An API server restart mid-run: watches reconnect, the Lease is re-acquired, no pod is missed."""

from __future__ import annotations

import time

import pytest

from devtools.controlplane import ControlPlane
from tests.controller.conftest import FAST_LEASE, Env
from tests.controller.support import (
    condition_status,
    gated_pod,
    metric,
    running_controller,
    wait_for,
    wait_for_controller_manager,
)
from webhook.contract import names
from webhook.controller import LeaseTiming

GATE = names.CONDITION_REGISTERED


@pytest.mark.parametrize(
    "lease",
    [
        pytest.param(LeaseTiming(30, 20, 1), id="outage-within-renew-deadline"),
        pytest.param(FAST_LEASE, id="outage-beyond-renew-deadline"),
    ],
)
def test_loops_resume_after_an_api_server_restart_and_miss_no_pod(
    env: Env, control_plane: ControlPlane, lease: LeaseTiming
) -> None:
    """Within the renew deadline the leader keeps leading and its watches resume from their resourceVersion;
    beyond it, the leader stops, campaigns again after the restart and its new term relists."""
    ns = env.namespace()
    pods_path = f"/api/v1/namespaces/{ns}/pods"
    try:
        run_with_restart(env, control_plane, lease, pods_path)
    finally:
        wait_for_controller_manager(control_plane)


def run_with_restart(env: Env, control_plane: ControlPlane, lease: LeaseTiming, pods_path: str) -> None:
    keeps_lease = lease.renew_deadline > 8

    def registered(names_: list[str]) -> bool:
        pods = {p["metadata"]["name"]: p for p in env.kube.get(pods_path)["items"]}
        return all(condition_status(pods.get(n, {}), GATE) == "True" for n in names_)

    with running_controller(env.settings(lease=lease), env.kubeconfig) as controller:
        wait_for(lambda: controller.is_leader, 10, "leadership")
        before = [f"before-{i}" for i in range(3)]
        for name in before:
            env.kube.create(pods_path, gated_pod(name, env.node))
        wait_for(lambda: registered(before), 15, "pods registered before the restart")

        # Pods whose gate comes due while the API server is down, and pods that only become ready after it.
        due_in_outage = [f"due-{i}" for i in range(3)]
        for name in due_in_outage:
            env.kube.create(pods_path, gated_pod(name, env.node, register_delay="2s"))
        late_ready = [f"late-{i}" for i in range(2)]
        for name in late_ready:
            env.kube.create(pods_path, gated_pod(name, env.node, ready_delay="4s"))
        wait_for(
            lambda: all(
                condition_status(p, "ContainersReady") == "True"
                for p in env.kube.get(pods_path)["items"]
                if p["metadata"]["name"].startswith("due-")
            ),
            10,
            "due-* containers ready",
        )

        control_plane.stop_apiserver()  # (restart_apiserver() in two halves: the checks go in between)
        if keeps_lease:
            time.sleep(1.0)
        else:
            wait_for(lambda: not controller.is_leader, 15, "the leader to notice it cannot renew")
        control_plane.start_apiserver()
        if keeps_lease:
            assert controller.is_leader, "lost the lease although the outage was shorter than the renew deadline"

        wait_for(lambda: controller.is_leader, 30, "leadership after the restart")
        after = [f"after-{i}" for i in range(3)]
        for name in after:
            env.kube.create(pods_path, gated_pod(name, env.node))
        everything = before + due_in_outage + late_ready + after
        wait_for(lambda: registered(everything), 30, "every pod registered after the restart")
        wait_for(
            lambda: all(condition_status(p, "Ready") == "True" for p in env.kube.get(pods_path)["items"]),
            15,
            "every pod Ready",
        )
        assert metric(controller.metrics, "lanes_gate_patches_total", {"result": "success"}) >= len(everything)
        assert metric(controller.metrics, "lanes_gate_pending_pods") == 0
        if keeps_lease:
            # the same term's watches saw the outage and resumed (no new term was started)
            errors = metric(controller.metrics, "lanes_controller_watch_errors_total", {"resource": "pods"})
            assert errors >= 1, "the pod watch never saw the outage"
