"""Issue #12.4 defects of what the webhook injects, checked where they bite: pods admitted by the chart's webhook
on the real node, then run (or refused) by the real API server's Pod Security admission and the real kubelet.

- Pod Security ``restricted`` is enforced by the API server *after* the mutating webhooks: an injected pod in a
  ``restricted`` namespace is admitted and runs only if what Lanes adds complies;
- no fixed ``runAsUser`` on the helper containers: they run under whatever UID the pod or platform assigns
  (OpenShift's restricted-v2 hands out UIDs like 1000680000 and rejects any other);
- a pod that can only run on Windows (the usual ``kubernetes.io/os`` nodeSelector, not just ``spec.os``) gets no
  Linux helper;
- ``prewarm-policy: require`` on a ``restartPolicy: Never`` pod: the kubelet never reruns a failed init container
  there, so the prewarm retries in-process until the dependency answers instead of failing the pod at the first miss.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from kubernetes import client

from tests.realnode.pods import wait_for, wait_ready
from tests.realnode.workloads import app_container, log_lines, pod

RESTRICTED_APP = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _init(p: client.V1Pod, name: str) -> client.V1Container | None:
    return next((c for c in p.spec.init_containers or [] if c.name == name), None)


def test_an_injected_pod_is_admitted_and_runs_in_a_restricted_namespace(
    node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    core = client.CoreV1Api(node_k8s)
    core.patch_namespace(enabled_ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    body = pod("restricted", [app_container(sample_image, securityContext=RESTRICTED_APP)])
    core.create_namespaced_pod(enabled_ns, body)  # refused (403) if anything Lanes adds breaks `restricted`
    ready = wait_ready(core, enabled_ns, "restricted", timeout=120)
    agent = _init(ready, "lanes-agent")
    assert agent is not None, "admitted without injection"
    assert agent.security_context.run_as_non_root is True
    assert agent.security_context.run_as_user is None  # the image's numeric USER, or the platform's choice


def test_the_helpers_run_under_a_uid_the_platform_assigns(
    node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    """A UID from OpenShift's usual namespace range, set on the pod as restricted-v2 does: the agent inherits it
    (nothing in its container asks for 65532) and still starts, reads its files and answers its probes."""
    core = client.CoreV1Api(node_k8s)
    uid = 1000680000
    body = pod(
        "assigned-uid",
        [app_container(sample_image)],
        securityContext={"runAsUser": uid, "runAsGroup": uid, "fsGroup": uid},
    )
    core.create_namespaced_pod(enabled_ns, body)
    ready = wait_ready(core, enabled_ns, "assigned-uid", timeout=120)
    agent = _init(ready, "lanes-agent")
    assert agent is not None and agent.security_context.run_as_user is None
    assert ready.spec.security_context.run_as_user == uid


def test_a_windows_only_pod_by_node_selector_gets_no_linux_helper(
    node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    core = client.CoreV1Api(node_k8s)
    body = pod("windows", [app_container(sample_image)], nodeSelector={"kubernetes.io/os": "windows"})
    created = core.create_namespaced_pod(enabled_ns, body)
    assert _init(created, "lanes-agent") is None and _init(created, "lanes-prewarm") is None
    assert created.spec.containers[0].lifecycle is None  # no preStop pointing at an agent that is not there
    # and the webhook did see it: a Linux pod created right after is injected
    linux = core.create_namespaced_pod(enabled_ns, pod("linux", [app_container(sample_image)]))
    assert _init(linux, "lanes-agent") is not None


def test_prewarm_require_on_a_never_pod_waits_for_a_late_dependency(
    real_node: Any, node_k8s: client.ApiClient, enabled_ns: str, sample_image: str
) -> None:
    """The dependency is a Service whose only backend starts ~8 s after the pod: until then kube-proxy refuses
    connections to its ClusterIP. The pod must end Succeeded, its prewarm having retried in-process."""
    core = client.CoreV1Api(node_k8s)
    service = core.create_namespaced_service(
        enabled_ns,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "late"},
            "spec": {"selector": {"app": "late"}, "ports": [{"port": 8080, "targetPort": 8080}]},
        },
    )
    target = f"tcp://{service.spec.cluster_ip}:8080"
    job_like = pod(
        "never",
        [app_container(sample_image, command=["python3", "-c", "print('work done')"], ports=[])],
        annotations={
            "lanes.io/prewarm": target,
            "lanes.io/prewarm-policy": "require",
            "lanes.io/agent": "false",
        },
        restartPolicy="Never",
    )
    created = core.create_namespaced_pod(enabled_ns, job_like)
    assert _init(created, "lanes-prewarm") is not None, "admitted without the prewarm"

    def backend_later() -> None:
        time.sleep(8)
        core.create_namespaced_pod(enabled_ns, pod("late", [app_container(sample_image)]))

    starter = threading.Thread(target=backend_later)
    starter.start()
    try:
        def finished() -> str | None:
            phase = core.read_namespaced_pod("never", enabled_ns).status.phase
            return phase if phase in ("Succeeded", "Failed") else None

        phase = wait_for("the Never pod to finish", finished, timeout=180)
    finally:
        starter.join()
    lines = [text for _, text in log_lines(real_node, enabled_ns, "never", "lanes-prewarm")]
    assert phase == "Succeeded", "\n".join(lines[-20:])
    done = core.read_namespaced_pod("never", enabled_ns)
    prewarm = next(s for s in done.status.init_container_statuses if s.name == "lanes-prewarm")
    assert prewarm.restart_count == 0 and prewarm.state.terminated.exit_code == 0
    results = [text for text in lines if text.split()[:2] in (["ok", target], ["FAIL", target])]
    assert results, "\n".join(lines)
    line = results[-1]
    assert line.split()[0] == "ok", line
    attempts = int(re.search(r"\battempts=(\d+)", line).group(1))  # type: ignore[union-attr]
    assert attempts > 1, f"reached at the first attempt, so the test proved nothing: {line}"
