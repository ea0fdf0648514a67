"""Helpers for tests that talk to the real API server (importable as ``tests.kube``)."""

from __future__ import annotations

import time
import uuid

from kubernetes import client
from kubernetes.client.exceptions import ApiException


def wait_for_default_service_account(k8s: client.ApiClient, name: str, timeout: float = 30) -> None:
    """Pods cannot be created before kube-controller-manager made the namespace's `default` ServiceAccount."""
    core = client.CoreV1Api(k8s)
    deadline = time.monotonic() + timeout
    while True:
        try:
            core.read_namespaced_service_account("default", name)
            return
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def make_namespace(
    k8s: client.ApiClient, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels, annotations=annotations))
    client.CoreV1Api(k8s).create_namespace(body)
    wait_for_default_service_account(k8s, name)
    return name
