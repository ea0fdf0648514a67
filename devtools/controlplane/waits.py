"""Waiting for what kube-controller-manager creates asynchronously, shared by tests and the demo."""

from __future__ import annotations

import time
from typing import Any


def wait_for_default_service_account(api_client: Any, namespace: str, timeout: float = 30) -> None:
    """Pods cannot be created before the controller-manager made the namespace's `default` ServiceAccount."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + timeout
    while True:
        try:
            core.read_namespaced_service_account("default", namespace)
            return
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.1)
