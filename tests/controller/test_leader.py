"""Leader election: one replica acts, a successor takes over within the lease duration, a leader that cannot
renew stops acting before anyone else could hold the Lease."""

from __future__ import annotations

import time

from tests.controller.conftest import FAST_LEASE, Env
from tests.controller.support import (
    ControllerProcess,
    condition_status,
    gated_pod,
    metric,
    parse_time,
    running_controller,
    wait_for,
)
from webhook.contract import names

GATE = names.CONDITION_REGISTERED
PATCHES = 'lanes_gate_patches_total{result="success"}'


def controller_args(env: Env, identity: str) -> list[str]:
    settings = env.settings()  # grants the RBAC these flags need
    return [
        f"--kubeconfig={env.kubeconfig}",
        f"--namespace={settings.namespace}",
        f"--identity={identity}",
        f"--lease-name={settings.lease_name}",
        f"--lease-duration={FAST_LEASE.lease_duration}",
        f"--renew-deadline={FAST_LEASE.renew_deadline}",
        f"--retry-period={FAST_LEASE.retry_period}",
        f"--namespace-selector={env.selector}",
        "--repair=off",
        "--log-level=debug",
    ]


def registered(env: Env, ns: str, names_: list[str]) -> bool:
    pods = {p["metadata"]["name"]: p for p in env.kube.get(f"/api/v1/namespaces/{ns}/pods")["items"]}
    return all(condition_status(pods.get(n, {}), GATE) == "True" for n in names_)


def test_only_the_leader_patches_and_a_successor_takes_over_within_the_lease_duration(env: Env) -> None:
    ns = env.namespace()
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{env.system_namespace}/leases/lanes-controller"
    replicas = {
        name: ControllerProcess(controller_args(env, name), env.workdir / f"{name}.log").start()
        for name in ("replica-a", "replica-b")
    }
    try:
        wait_for(lambda: sum(r.metrics().get("lanes_leader", 0) for r in replicas.values()) == 1, 15, "one leader")
        holder = env.kube.get(lease_path)["spec"]["holderIdentity"]
        follower_name = next(n for n in replicas if n != holder)
        leader, follower = replicas[holder], replicas[follower_name]
        assert leader.metrics()["lanes_leader"] == 1 and follower.metrics()["lanes_leader"] == 0

        first = [f"first-{i}" for i in range(4)]
        for name in first:
            env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod(name, env.node))
        wait_for(lambda: registered(env, ns, first), 20, "first pods registered")
        time.sleep(0.5)
        assert leader.metrics().get(PATCHES) == len(first)
        assert follower.metrics().get(PATCHES, 0) == 0, "the follower patched too"

        # The leader dies without releasing the Lease: the follower waits out the lease duration, then leads.
        leader.kill()
        killed = time.monotonic()
        wait_for(lambda: follower.metrics().get("lanes_leader") == 1, 15, "the follower to take over", 0.05)
        takeover = time.monotonic() - killed
        assert takeover <= FAST_LEASE.lease_duration + 2 * FAST_LEASE.retry_period + 1.0, f"took {takeover:.1f}s"
        assert env.kube.get(lease_path)["spec"]["holderIdentity"] == follower_name

        second = [f"second-{i}" for i in range(3)]
        for name in second:
            env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod(name, env.node))
        wait_for(lambda: registered(env, ns, second), 20, "pods registered by the new leader")
        time.sleep(0.5)
        assert follower.metrics().get(PATCHES) == len(second)
    finally:
        for replica in replicas.values():
            replica.stop()


def test_a_leader_that_cannot_renew_stops_before_the_lease_could_be_taken(env: Env) -> None:
    ns = env.namespace()
    settings = env.settings()
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{settings.namespace}/leases/{settings.lease_name}"
    bindings = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{settings.namespace}/rolebindings"
    with running_controller(settings, env.kubeconfig) as controller:
        wait_for(lambda: controller.is_leader, 10, "leadership")
        env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod("before", env.node))
        wait_for(lambda: registered(env, ns, ["before"]), 10, "registered while leading")

        # Take the Lease permissions away: every renewal now fails with 403.
        for binding in env.kube.get(bindings)["items"]:
            env.kube.delete(f"{bindings}/{binding['metadata']['name']}")
        revoked = time.monotonic()
        wait_for(lambda: not controller.is_leader, 10, "the leader to give up", 0.02)
        stopped_after = time.monotonic() - revoked
        lease = env.kube.get(lease_path)["spec"]
        expires = parse_time(lease["renewTime"]) + lease["leaseDurationSeconds"]
        margin = expires - time.time()
        assert stopped_after <= FAST_LEASE.renew_deadline + FAST_LEASE.retry_period + 0.5, stopped_after
        assert margin > 0, f"still acting {-margin:.2f}s after another replica could have taken the Lease"
        wait_for(lambda: metric(controller.metrics, "lanes_leader") == 0, 2, "lanes_leader 0")

        env.kube.create(f"/api/v1/namespaces/{ns}/pods", gated_pod("during", env.node))
        time.sleep(FAST_LEASE.lease_duration)
        assert not registered(env, ns, ["during"]), "a replica without the Lease registered a pod"

        # Permissions back: the same replica campaigns again, leads, and catches up.
        env.settings()
        wait_for(lambda: controller.is_leader, 15, "leadership again")
        wait_for(lambda: registered(env, ns, ["during"]), 10, "registered after re-acquiring")
        assert metric(controller.metrics, "lanes_gate_patches_total", {"result": "success"}) == 2
