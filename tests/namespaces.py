"""Helpers for tests that talk to the real API server (importable as ``tests.namespaces``)."""

from __future__ import annotations

import uuid

from kubernetes import client

from devtools.controlplane.waits import wait_for_default_service_account

__all__ = ["make_namespace", "wait_for_default_service_account"]


def make_namespace(
    k8s: client.ApiClient, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels, annotations=annotations))
    client.CoreV1Api(k8s).create_namespace(body)
    wait_for_default_service_account(k8s, name)
    return name
