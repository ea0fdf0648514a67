"""The lifecycle claims of Lanes on a real kubelet (DESIGN.md, issue #12.5), with the chart installed by helm and
injection turned on by labelling the namespace.

Timestamps come from the kubelet (pod conditions, container states: one-second resolution), from containerd's
log lines (nanoseconds) and from the agent's ``/status``; comparisons allow the one-second rounding of the API.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from devtools.realnode import RealNode
from tests.realnode.pods import condition, is_ready, wait_for, wait_gone, wait_ready
from tests.realnode.workloads import (
    LogTail,
    agent_status,
    app_container,
    deployment,
    json_events,
    kill_container,
    log_lines,
    parse_k8s_time,
    pod,
)

#: the API's timestamps are whole seconds: a duration measured between two of them can read up to 1 s short
API_ROUNDING = 1.0


def _create(core: client.CoreV1Api, namespace: str, body: dict[str, Any]) -> None:
    core.create_namespaced_pod(namespace, body)


def _containers(p: client.V1Pod) -> list[str]:
    return [c.name for c in (p.spec.init_containers or []) + p.spec.containers]


def _first(events: list[tuple[float, dict[str, Any]]], **match: str) -> float | None:
    for stamp, event in events:
        if all(event.get(k) == v for k, v in match.items()):
            return stamp
    return None


def test_ready_only_after_app_ready_warmup_and_register_delay(
    real_node: RealNode, node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    core = client.CoreV1Api(node_k8s)
    body = pod(
        "gated",
        [app_container(sample_image, {"COLD_START": "3"})],
        annotations={"lanes.io/register-delay": "3s", "lanes.io/warmup-requests": "GET /healthz x5"},
    )
    _create(core, enabled_ns, body)
    ready = wait_ready(core, enabled_ns, "gated", timeout=120)
    assert "lanes-agent" in _containers(ready)
    gate = condition(ready, "lanes.io/registered")
    containers_ready = condition(ready, "ContainersReady")
    ready_cond = condition(ready, "Ready")
    assert gate is not None and containers_ready is not None and ready_cond is not None
    created = parse_k8s_time(ready.metadata.creation_timestamp)
    t_containers = parse_k8s_time(containers_ready.last_transition_time)
    t_ready = parse_k8s_time(ready_cond.last_transition_time)

    status = agent_status(real_node, ready.status.pod_ip)
    app_events = json_events(log_lines(real_node, enabled_ns, "gated", "app"))
    t_app_listening = _first(app_events, event="start")
    assert t_app_listening is not None, app_events
    assert status["warmup"]["requests"]["done"] == 5, status
    # the app listened only after its cold start; the agent was ready only after the app and its warm-up
    assert t_app_listening - created >= 3 - API_ROUNDING
    serving_since = parse_k8s_time(status["app"]["serving_since"])
    assert serving_since >= t_app_listening - 0.05
    assert t_containers >= serving_since - API_ROUNDING
    # the readiness gate held for the register delay after all containers were ready
    assert t_ready - t_containers >= 3 - API_ROUNDING, (t_containers, t_ready)
    assert parse_k8s_time(gate.last_transition_time) >= t_containers + 3 - API_ROUNDING


def test_delete_runs_prestop_then_drain_then_sigterm_and_the_agent_outlives_the_app(
    real_node: RealNode, node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    core = client.CoreV1Api(node_k8s)
    _create(core, enabled_ns, pod("drained", [app_container(sample_image)], annotations={"lanes.io/drain": "4s"}))
    wait_ready(core, enabled_ns, "drained", timeout=120)
    tail = LogTail(real_node, enabled_ns, "drained")
    deleted_at = time.time()
    core.delete_namespaced_pod("drained", enabled_ns)
    wait_gone(core, enabled_ns, "drained", timeout=90)
    tail.stop()

    agent = json_events(tail.lines("lanes-agent"))
    app = json_events(tail.lines("app"))
    t_prestop = _first(agent, msg="prestop called")
    t_app_stop = _first(app, event="stop")
    t_agent_signal = _first(agent, msg="signal received")
    assert t_prestop is not None and t_app_stop is not None and t_agent_signal is not None, (agent, app)
    app_stop = next(e for _, e in app if e.get("event") == "stop")
    t_app_sigterm = t_app_stop - float(app_stop.get("drain_s", 0))  # graceful: it logs when it is done
    assert deleted_at - 1 <= t_prestop < t_app_sigterm
    assert t_app_sigterm - t_prestop >= 4 - 0.2, "SIGTERM reached the app before the drain ended"
    assert t_agent_signal >= t_app_stop, "the agent got SIGTERM before the app had exited"


def test_a_job_with_the_agent_completes(
    real_node: RealNode, node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    batch = client.BatchV1Api(node_k8s)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        app_container(
                            sample_image, command=["python3", "-c", "import time; time.sleep(2); print('done')"]
                        )
                    ],
                }
            },
        },
    }
    batch.create_namespaced_job(enabled_ns, job)

    def finished() -> str | None:
        status = batch.read_namespaced_job("once", enabled_ns).status
        for cond in status.conditions or []:
            if cond.type in ("Complete", "Failed") and cond.status == "True":
                return str(cond.type)
        return None

    assert wait_for("the Job to finish", finished, timeout=120) == "Complete"
    pods = client.CoreV1Api(node_k8s).list_namespaced_pod(enabled_ns, label_selector="job-name=once").items
    assert pods and "lanes-agent" in _containers(pods[0])


def test_minimal_mode_is_a_sleep_prestop(
    real_node: RealNode, node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    core = client.CoreV1Api(node_k8s)
    _create(
        core,
        enabled_ns,
        pod("minimal", [app_container(sample_image)], annotations={"lanes.io/agent": "false", "lanes.io/drain": "3s"}),
    )
    running = wait_ready(core, enabled_ns, "minimal", timeout=120)
    assert "lanes-agent" not in _containers(running)
    app = next(c for c in running.spec.containers if c.name == "app")
    assert app.lifecycle.pre_stop.sleep.seconds == 3
    tail = LogTail(real_node, enabled_ns, "minimal")
    deleted_at = time.time()
    core.delete_namespaced_pod("minimal", enabled_ns)
    wait_gone(core, enabled_ns, "minimal", timeout=90)
    tail.stop()
    events = json_events(tail.lines("app"))
    stop = next(((t, e) for t, e in events if e.get("event") == "stop"), None)
    assert stop is not None, events
    t_sigterm = stop[0] - float(stop[1].get("drain_s", 0))
    assert t_sigterm - deleted_at >= 3 - 0.3, "SIGTERM came before the preStop sleep ended"


# -- #12.4: defects that lose requests or block pods on a real node ---------------------------------------------


def test_the_endpoint_stays_serving_while_draining(
    real_node: RealNode, node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    """A single-replica Recreate workload: kube-proxy falls back to serving+terminating endpoints only, so the
    endpoint must stay ``serving`` for the whole drain (the agent's /ready may not turn 503 on preStop)."""
    apps, core = client.AppsV1Api(node_k8s), client.CoreV1Api(node_k8s)
    discovery = client.DiscoveryV1Api(node_k8s)
    single = deployment("single", sample_image, annotations={"lanes.io/drain": "6s"}, strategy={"type": "Recreate"})
    apps.create_namespaced_deployment(enabled_ns, single)
    core.create_namespaced_service(
        enabled_ns,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "single"},
            "spec": {"selector": {"app": "single"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )

    def one_ready_pod() -> client.V1Pod | None:
        pods = core.list_namespaced_pod(enabled_ns, label_selector="app=single").items
        ready = [p for p in pods if is_ready(p)]
        return ready[0] if ready else None

    victim = wait_for("the Deployment's pod Ready", one_ready_pod, timeout=120)
    core.delete_namespaced_pod(victim.metadata.name, enabled_ns)
    observations: list[tuple[float, bool | None, bool | None]] = []
    started = time.monotonic()
    while time.monotonic() - started < 5:  # inside the 6 s drain
        for endpoint_slice in discovery.list_namespaced_endpoint_slice(
            enabled_ns, label_selector="kubernetes.io/service-name=single"
        ).items:
            for endpoint in endpoint_slice.endpoints or []:
                if endpoint.target_ref and endpoint.target_ref.name == victim.metadata.name:
                    conditions = endpoint.conditions
                    if conditions.terminating:
                        observations.append((time.monotonic() - started, conditions.serving, conditions.ready))
        time.sleep(0.25)
    assert observations, "the terminating endpoint was never seen"
    not_serving = [o for o in observations if not o[1]]
    assert not_serving == [], f"the endpoint stopped serving {not_serving[0][0]:.1f}s into a 6s drain"


def test_readiness_follows_the_app_after_a_container_restart(
    real_node: RealNode, node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    """An app without its own readiness probe, killed: the pod must not be Ready again before the restarted app
    listens (it has a 3 s cold start). Issue #12.4 "readiness is latched": the agent's watch notices a lost app
    within ~2.2 s and the kubelet needs two failed probes more, so Ready came back before the restarted app
    listened (3.9 s and 4.2 s early in two runs); fixed by the ``/ready/app`` probe the webhook gives an app
    container without one, which the kubelet starts unready on every restart."""
    core = client.CoreV1Api(node_k8s)
    _create(core, enabled_ns, pod("restarted", [app_container(sample_image, {"COLD_START": "3"})]))
    running = wait_ready(core, enabled_ns, "restarted", timeout=120)
    probe = next(c for c in running.spec.containers if c.name == "app").readiness_probe
    assert probe is not None and probe.http_get.path == "/ready/app", probe
    app_status = next(s for s in running.status.container_statuses if s.name == "app")
    kill_container(real_node, app_status.container_id)

    def restarted() -> client.V1Pod | None:
        current = core.read_namespaced_pod("restarted", enabled_ns)
        status = next(s for s in current.status.container_statuses if s.name == "app")
        return current if status.restart_count >= 1 else None

    wait_for("the app container restarted", restarted, timeout=60)
    ready_again = wait_ready(core, enabled_ns, "restarted", timeout=60)
    t_ready = parse_k8s_time(condition(ready_again, "Ready").last_transition_time)

    def starts() -> list[float]:
        lines = json_events(log_lines(real_node, enabled_ns, "restarted", "app"))
        found = [t for t, e in lines if e.get("event") == "start"]
        return found if len(found) >= 2 else []

    restarted_listening = wait_for("the restarted app to listen", starts, timeout=30)[-1]
    # whole-second API timestamps: Ready must not come more than the rounding before the app listened
    assert t_ready >= restarted_listening - API_ROUNDING, (
        f"the pod was Ready again {restarted_listening - t_ready:.1f}s before the restarted app listened"
    )


def test_an_app_bound_to_the_pod_ip_only_becomes_ready(
    real_node: RealNode, node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    core = client.CoreV1Api(node_k8s)
    container = app_container(sample_image)
    container["env"].append({"name": "BIND", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    _create(core, enabled_ns, pod("pod-ip-only", [container]))
    ready = wait_ready(core, enabled_ns, "pod-ip-only", timeout=90)
    assert "lanes-agent" in _containers(ready)


def test_a_pod_whose_first_port_is_udp_becomes_ready(
    real_node: RealNode, node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    core = client.CoreV1Api(node_k8s)
    container = app_container(sample_image)
    container["ports"] = [
        {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
    ]
    _create(core, enabled_ns, pod("udp-first", [container]))
    ready = wait_ready(core, enabled_ns, "udp-first", timeout=90)
    assert "lanes-agent" in _containers(ready)


def test_the_gate_still_sees_new_pods_after_the_nodes_conntrack_table_is_flushed(
    real_node: RealNode, node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    """The lossless_node benchmark's hang (rollout stuck 180 s): it runs ``conntrack -F`` on the node before each
    case, which made the controller's pod watch (through the Service IP, so through NAT) silently dead: the API
    server's packets were no longer translated back, nothing failed on the controller's side, and pods created
    afterwards were never registered until the watch's read timeout (5 to 10 minutes). Keepalive probes on watch
    sockets notice within about 25 s."""
    core = client.CoreV1Api(node_k8s)
    GATED = {"lanes.io/register-delay": "1s"}  # a register delay, so the webhook adds the readiness gate
    _create(core, enabled_ns, pod("before-flush", [app_container(sample_image)], annotations=GATED))
    wait_ready(core, enabled_ns, "before-flush", timeout=120)
    time.sleep(2)  # the watch connection idles, as between two benchmark cases
    flushed = real_node.run(["conntrack", "-F"], timeout=30)
    assert flushed.returncode == 0 or "0 flow entries" in flushed.stderr, flushed.stderr
    # The API server's own connection to the webhook went through the same NAT: its next call may fail (and
    # failurePolicy Ignore admit a pod uninjected). Server-side dry runs until it injects again: they create
    # nothing, so the controller's watch is not woken by them.
    from devtools.realnode.chart import _injects

    wait_for("the webhook to inject again after the flush", lambda: _injects(real_node, enabled_ns), timeout=60)
    _create(core, enabled_ns, pod("after-flush", [app_container(sample_image)], annotations=GATED))
    # ready containers within seconds; registration needs the controller to see the pod
    ready = wait_ready(core, enabled_ns, "after-flush", timeout=90)
    assert "lanes-agent" in _containers(ready), "admitted without injection"
    gate = condition(ready, "lanes.io/registered")
    containers_ready = condition(ready, "ContainersReady")
    assert gate is not None and gate.status == "True" and containers_ready is not None
    lag = parse_k8s_time(gate.last_transition_time) - parse_k8s_time(containers_ready.last_transition_time)
    print(f"\n[realnode] after the conntrack flush: registered {lag:.0f}s after ContainersReady (delay 1s)")
