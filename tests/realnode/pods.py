"""Small helpers of the real-node tests: create a pod, wait for a state, read the kubelet's timestamps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def condition(pod: client.V1Pod, kind: str) -> client.V1PodCondition | None:
    for cond in (pod.status and pod.status.conditions) or []:
        if cond.type == kind:
            return cond
    return None


def is_ready(pod: client.V1Pod) -> bool:
    cond = condition(pod, "Ready")
    return bool(cond and cond.status == "True")


def wait_ready(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 90) -> client.V1Pod:
    def ready() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if is_ready(pod) else None

    return wait_for(f"pod {namespace}/{name} Ready", ready, timeout)


def wait_gone(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 90) -> None:
    def gone() -> bool:
        try:
            core.read_namespaced_pod(name, namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(f"pod {namespace}/{name} deleted", gone, timeout)
