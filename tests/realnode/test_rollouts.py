"""Lifecycle claims that span a whole deletion, a rollout or a controller restart, on a real kubelet (DESIGN.md,
issue #12.5): the raised grace period holds, ``maxUnavailable: 0`` rollouts wait for the readiness gate, and the
gate survives a restart of the controller (the webhook pods' native sidecar).

The kubelet and the Deployment controller are the real ones, so these tests assert orderings and counts only:
when the kubelet killed a container (relative to the deletion and to the grace period it was given), which pods
existed, were registered and were Ready in each consistent snapshot the API server listed during a rollout.
Whole-second API timestamps are compared with one second of slack (``API_ROUNDING``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devtools.realnode import RealNode
from devtools.realnode.chart import InstalledLanes
from tests.namespaces import make_namespace
from tests.realnode.pods import condition, is_ready, wait_for, wait_gone, wait_ready
from tests.realnode.workloads import (
    LogTail,
    app_container,
    deployment,
    json_events,
    kill_container,
    parse_k8s_time,
    pod,
)

API_ROUNDING = 1.0
GATE = "lanes.io/registered"
ROLLING = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
SHUTDOWN_BUDGET = 15  # the chart's default defaults.shutdownBudget, which the session's install keeps

#: An app that ignores SIGTERM, so only the kubelet's SIGKILL at the end of the grace period stops it; it serves
#: HTTP on 8080 (the agent waits for it) and prints a heartbeat every 0.25 s: the last heartbeat in its log is a
#: lower bound of the moment it was killed, with containerd's nanosecond stamps.
STUBBORN_APP = """
import http.server, json, signal, threading, time
def log(event):
    print(json.dumps({"ts": time.time(), "event": event}), flush=True)
signal.signal(signal.SIGTERM, lambda *_: log("sigterm ignored"))
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
log("start")
while True:
    log("alive")
    time.sleep(0.25)
"""


def _gate(p: client.V1Pod) -> client.V1PodCondition | None:
    return condition(p, GATE)


def _gate_true(p: client.V1Pod) -> bool:
    cond = _gate(p)
    return bool(cond and cond.status == "True")


def _deleting(p: client.V1Pod) -> bool:
    return p.metadata.deletion_timestamp is not None


# -- the raised grace period holds --------------------------------------------------------------------------------


class _Watcher:
    """The last state of one pod as the API server showed it, polled until the pod is gone: the kubelet's final
    status update (the app terminated, with its exit code and ``finishedAt``) comes just before the removal."""

    def __init__(self, core: client.CoreV1Api, namespace: str, name: str) -> None:
        self.core, self.namespace, self.name = core, namespace, name
        self.app_terminated: client.V1ContainerStateTerminated | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                current = self.core.read_namespaced_pod(self.name, self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return
                time.sleep(0.2)
                continue
            for status in current.status.container_statuses or []:
                if status.name == "app" and status.state and status.state.terminated:
                    self.app_terminated = status.state.terminated
            time.sleep(0.1)

    def join(self) -> None:
        self._thread.join(timeout=200)


def _stubborn_pod(name: str, image: str, grace: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    container = app_container(image, command=["python3", "-u", "-c", STUBBORN_APP])
    return pod(name, [container], annotations=annotations, terminationGracePeriodSeconds=grace)


def _heartbeats(tail: LogTail) -> tuple[float | None, float | None]:
    """(first SIGTERM the app saw, last heartbeat it printed), containerd's stamps."""
    events = json_events(tail.lines("app"))
    sigterm = next((t for t, e in events if e.get("event") == "sigterm ignored"), None)
    alive = [t for t, e in events if e.get("event") == "alive"]
    return sigterm, (alive[-1] if alive else None)


def test_the_raised_grace_period_holds(
    real_node: RealNode, node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    """A pod asking for 5 s of grace with a 3 s drain: the webhook raises terminationGracePeriodSeconds to
    ceil(3 + 15) = 18, and on deletion the kubelet really gives it that long: an app that ignores SIGTERM gets it
    after the drain and lives on until the raised grace period is over (SIGKILL, exit 137). The same app in a
    plain namespace with the same 5 s grace, deleted at the same moment, is killed earlier."""
    core = client.CoreV1Api(node_k8s)
    drain, asked = 3, 5
    raised = drain + SHUTDOWN_BUDGET
    plain_ns = make_namespace(node_k8s)
    try:
        core.create_namespaced_pod(
            enabled_ns, _stubborn_pod("raised", sample_image, asked, {"lanes.io/drain": f"{drain}s"})
        )
        core.create_namespaced_pod(plain_ns, _stubborn_pod("plain", sample_image, asked))
        lanes_pod = wait_ready(core, enabled_ns, "raised", timeout=120)
        plain_pod = wait_ready(core, plain_ns, "plain", timeout=120)
        assert "lanes-agent" in [c.name for c in lanes_pod.spec.init_containers or []]
        assert lanes_pod.spec.termination_grace_period_seconds == raised
        assert plain_pod.spec.termination_grace_period_seconds == asked
        assert not plain_pod.spec.init_containers, "the plain namespace must not inject"

        tails = {"raised": LogTail(real_node, enabled_ns, "raised"), "plain": LogTail(real_node, plain_ns, "plain")}
        watchers = {"raised": _Watcher(core, enabled_ns, "raised"), "plain": _Watcher(core, plain_ns, "plain")}
        deleted_at = time.time()
        core.delete_namespaced_pod("raised", enabled_ns)
        core.delete_namespaced_pod("plain", plain_ns)
        deleting = core.read_namespaced_pod("raised", enabled_ns)
        assert deleting.metadata.deletion_grace_period_seconds == raised
        wait_gone(core, enabled_ns, "raised", timeout=150)
        wait_gone(core, plain_ns, "plain", timeout=150)
        for tail in tails.values():
            tail.stop()
        for watcher in watchers.values():
            watcher.join()
    finally:
        core.delete_namespace(plain_ns)

    agent = json_events(tails["raised"].lines("lanes-agent"))
    t_prestop = next((t for t, e in agent if e.get("msg") == "prestop called"), None)
    t_sigterm, t_last_alive = _heartbeats(tails["raised"])
    assert t_prestop is not None and t_sigterm is not None and t_last_alive is not None, (agent, t_sigterm)
    # SIGTERM came after the drain, and the app then had the shutdown budget: the kubelet did not kill it at the
    # 5 s the pod asked for. Heartbeats every 0.25 s: the last one is at most a beat (plus scheduling) before the
    # kill, so 1.5 s of slack.
    assert t_sigterm - t_prestop >= drain - 0.2, "SIGTERM reached the app before the drain ended"
    lived = t_last_alive - deleted_at
    assert lived >= raised - 1.5, f"the app was killed {lived:.1f}s after deletion, before the {raised}s grace period"
    terminated = watchers["raised"].app_terminated
    if terminated is not None:  # the kubelet's last status update is usually seen before the pod is removed
        assert terminated.exit_code == 137, terminated
        finished = parse_k8s_time(terminated.finished_at) - deleted_at
        print(f"\n[realnode] raised pod's app: exit {terminated.exit_code}, finishedAt {finished:.1f}s after deletion")
        assert finished >= raised - API_ROUNDING - 0.5, terminated

    plain_sigterm, plain_last_alive = _heartbeats(tails["plain"])
    assert plain_sigterm is not None and plain_last_alive is not None
    plain_lived = plain_last_alive - deleted_at
    print(f"\n[realnode] app alive after deletion: {lived:.1f}s with the raised {raised}s grace, "
          f"{plain_lived:.1f}s in a plain pod with {asked}s")
    assert plain_lived < lived, "without the raise the kubelet should have killed the app earlier"


# -- maxUnavailable: 0 rollouts wait for the gate -------------------------------------------------------------


def _rolled_out(apps: client.AppsV1Api, namespace: str, name: str, replicas: int) -> bool:
    deployment = apps.read_namespaced_deployment(name, namespace)
    status = deployment.status
    return bool(
        status.observed_generation == deployment.metadata.generation
        and status.updated_replicas == replicas
        and status.available_replicas == replicas
        and (status.replicas or 0) == replicas
    )


def test_a_max_unavailable_zero_rollout_waits_for_the_gate(
    real_node: RealNode, node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    """3 replicas, maxSurge 1, maxUnavailable 0, a 5 s register delay: in every snapshot of the rollout no more
    old pods are terminating (or gone) than new pods are registered, and never fewer than 3 pods are Ready and
    not terminating. The Deployment controller counts a pod available only once Ready, and the readiness gate
    holds Ready until the controller has registered the pod."""
    apps, core = client.AppsV1Api(node_k8s), client.CoreV1Api(node_k8s)
    name, replicas, delay = "rolling", 3, 5
    annotations = {"lanes.io/register-delay": f"{delay}s", "lanes.io/drain": "2s"}
    apps.create_namespaced_deployment(enabled_ns, deployment(name, sample_image, replicas, annotations, ROLLING))
    wait_for("the first rollout", lambda: _rolled_out(apps, enabled_ns, name, replicas), timeout=240, interval=0.5)
    old = {p.metadata.name for p in core.list_namespaced_pod(enabled_ns, label_selector=f"app={name}").items}
    assert len(old) == replicas, old

    restarted = {"kubectl.kubernetes.io/restartedAt": str(time.time())}  # what `kubectl rollout restart` sets
    patch = {"spec": {"template": {"metadata": {"annotations": restarted}}}}
    apps.patch_namespaced_deployment(name, enabled_ns, patch)
    # each list is one consistent snapshot of the API server (one resourceVersion)
    snapshots: list[dict[str, Any]] = []
    first_deletion: dict[str, float] = {}  # old pod -> when its deletion was requested (whole seconds)
    registered_at: dict[str, float] = {}  # new pod -> its gate's lastTransitionTime
    deadline = time.monotonic() + 300
    while True:
        assert time.monotonic() < deadline, f"the rollout did not finish; last snapshot: {snapshots[-1:]}"
        pods = core.list_namespaced_pod(enabled_ns, label_selector=f"app={name}").items
        present = {p.metadata.name: p for p in pods}
        old_active = [n for n in old if n in present and not _deleting(present[n])]
        new = [p for p in pods if p.metadata.name not in old and not _deleting(p)]
        for p in pods:
            if p.metadata.name in old and _deleting(p) and p.metadata.name not in first_deletion:
                # deletionTimestamp = the request + the grace period
                grace = p.metadata.deletion_grace_period_seconds or 0
                first_deletion[p.metadata.name] = parse_k8s_time(p.metadata.deletion_timestamp) - grace
        for p in new:
            gate = _gate(p)
            if gate is not None and gate.status == "True":
                registered_at.setdefault(p.metadata.name, parse_k8s_time(gate.last_transition_time))
        snapshots.append({
            "old_removed": replicas - len(old_active),
            "new_registered": sum(1 for p in new if _gate_true(p)),
            "new_ready": sum(1 for p in new if is_ready(p)),
            "ready_active": sum(1 for p in pods if is_ready(p) and not _deleting(p)),
            "pods": len(pods),
        })
        if not old_active and not (old & present.keys()) and _rolled_out(apps, enabled_ns, name, replicas):
            break
        time.sleep(0.3)

    early = [s for s in snapshots if s["old_removed"] > s["new_registered"]]
    assert early == [], f"old pods went before new pods were registered: {early[:3]}"
    short = [s for s in snapshots if s["ready_active"] < replicas]
    assert short == [], f"fewer than {replicas} Ready pods during the rollout: {short[:3]}"
    # the snapshots did see the rollout in progress, not just its start and end
    assert any(0 < s["old_removed"] < replicas for s in snapshots), snapshots
    assert len(first_deletion) == replicas and len(registered_at) == replicas, (first_deletion, registered_at)
    # the same from the API's own stamps: the k-th old pod's deletion came after the k-th new pod's registration
    # (both whole seconds, cut off: the cut keeps the order)
    deletions, registrations = sorted(first_deletion.values()), sorted(registered_at.values())
    for k, (deleted, registered) in enumerate(zip(deletions, registrations, strict=True)):
        assert deleted >= registered, f"old pod #{k + 1} deleted at {deleted}, new pod #{k + 1} registered {registered}"
    # and every new pod waited its register delay after its containers were ready
    for p in core.list_namespaced_pod(enabled_ns, label_selector=f"app={name}").items:
        containers_ready, gate = condition(p, "ContainersReady"), _gate(p)
        assert containers_ready is not None and gate is not None and gate.status == "True", p.status.conditions
        held = parse_k8s_time(gate.last_transition_time) - parse_k8s_time(containers_ready.last_transition_time)
        assert held >= delay - API_ROUNDING, (p.metadata.name, held)
    print(f"\n[realnode] rollout of {replicas} replicas: {len(snapshots)} snapshots, "
          f"max surge seen {max(s['pods'] for s in snapshots) - replicas}")


# -- the gate across a controller restart ---------------------------------------------------------------------


def _leading_controller(node_k8s: client.ApiClient, namespace: str) -> client.V1Pod:
    """The webhook pod whose controller holds the Lease (the one that PATCHes the gate), once it is Ready with its
    controller running: another test of the session may have rolled the webhook pods just before."""
    core, coordination = client.CoreV1Api(node_k8s), client.CoordinationV1Api(node_k8s)

    def leader() -> client.V1Pod | None:
        leases = [lease for lease in coordination.list_namespaced_lease(namespace).items
                  if lease.metadata.name.endswith("controller") and lease.spec.holder_identity]
        for lease in leases:
            try:
                candidate = core.read_namespaced_pod(lease.spec.holder_identity, namespace)
            except ApiException:
                continue
            status = _controller_status(candidate)
            running = status is not None and status.container_id and status.state.running and status.ready
            if running and is_ready(candidate) and not _deleting(candidate):
                return candidate
        return None

    found: client.V1Pod = wait_for("the leading controller's webhook pod Ready", leader, timeout=120)
    return found


def _controller_status(p: client.V1Pod) -> client.V1ContainerStatus | None:
    return next((s for s in p.status.init_container_statuses or [] if s.name == "controller"), None)


def test_the_gate_opens_across_a_controller_restart(
    real_node: RealNode, node_k8s: client.ApiClient, lanes: InstalledLanes, enabled_ns: str, sample_image: str
) -> None:
    """The controller (native sidecar of the webhook pod) is killed while a pod is inside its register delay: once
    the kubelet has restarted it, the gate still opens, no earlier than the delay after ContainersReady, and a pod
    registered before the restart stays registered and Ready (its condition untouched).

    Seen on the node: the new controller registers the pod within a second of starting, counting the delay from
    ContainersReady's stamp; how long it takes to be back is the kubelet's restart back-off of the sidecar (1 to 9 s
    for a first crash here, then 15, 25, 41 s for repeated kills), and that long a pending pod waits."""
    core = client.CoreV1Api(node_k8s)
    delay = 15  # room for the steps between ContainersReady and the kill on a loaded machine
    core.create_namespaced_pod(
        enabled_ns, pod("registered-before", [app_container(sample_image)], {"lanes.io/register-delay": "1s"})
    )
    before = wait_ready(core, enabled_ns, "registered-before", timeout=120)
    before_gate = _gate(before)
    assert before_gate is not None and before_gate.status == "True"
    webhook = _leading_controller(node_k8s, lanes.namespace)

    core.create_namespaced_pod(
        enabled_ns, pod("pending", [app_container(sample_image)], {"lanes.io/register-delay": f"{delay}s"})
    )

    def containers_ready() -> client.V1Pod | None:
        current = core.read_namespaced_pod("pending", enabled_ns)
        cond = condition(current, "ContainersReady")
        return current if cond is not None and cond.status == "True" else None

    wait_for("the pending pod's containers ready", containers_ready, timeout=120)
    controller = _controller_status(core.read_namespaced_pod(webhook.metadata.name, lanes.namespace))
    assert controller is not None and controller.container_id and controller.state.running, controller
    pending = core.read_namespaced_pod("pending", enabled_ns)
    assert not _gate_true(pending) and not is_ready(pending), "the register delay was over before the kill"
    kill_container(real_node, controller.container_id)

    def restarted() -> client.V1ContainerStatus | None:
        status = _controller_status(core.read_namespaced_pod(webhook.metadata.name, lanes.namespace))
        assert status is not None
        running_again = status.restart_count > controller.restart_count and status.state.running
        return status if running_again else None

    killed_at = time.time()
    wait_for("the controller container restarted", restarted, timeout=120)
    back_at = time.time()
    registered = wait_ready(core, enabled_ns, "pending", timeout=150)
    gate, ready_since = _gate(registered), condition(registered, "ContainersReady")
    assert gate is not None and gate.status == "True" and ready_since is not None
    held = parse_k8s_time(gate.last_transition_time) - parse_k8s_time(ready_since.last_transition_time)
    assert held >= delay - API_ROUNDING, f"registered {held:.0f}s after ContainersReady, the delay is {delay}s"
    t_ready = parse_k8s_time(ready_since.last_transition_time)
    print(f"\n[realnode] controller killed {killed_at - t_ready:.1f}s into a {delay}s register delay, running again "
          f"{back_at - killed_at:.1f}s later; the gate opened {held:.0f}s after ContainersReady")

    after = core.read_namespaced_pod("registered-before", enabled_ns)
    after_gate = _gate(after)
    assert after_gate is not None and after_gate.status == "True", after.status.conditions
    assert after_gate.last_transition_time == before_gate.last_transition_time, "re-registered after the restart"
    assert is_ready(after)
