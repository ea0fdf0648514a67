"""A real `lanes-webhook serve` process registered with the real API server.

The server runs as a subprocess (exactly what the Deployment runs) on a loopback port with a certificate for
127.0.0.1 and watches the test control plane for owners; a MutatingWebhookConfiguration shaped like the chart's
points at it with ``clientConfig.url``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devtools.controlplane import ControlPlane
from devtools.local_webhook import LocalWebhook, start_local_webhook
from webhook.admission.registration import mutating_webhook_configuration

OWN_NAMESPACE = "lanes-system"
HELPER_IMAGE = "registry.example/lanes-helper:test"
CONFIG_NAME = "lanes-e2e"


WebhookServer = LocalWebhook


def start_server(control_plane: ControlPlane, workdir: Path, *, extra: list[str] | None = None) -> WebhookServer:
    defaults = {"own_namespace": OWN_NAMESPACE, "helper_image": HELPER_IMAGE}
    return start_local_webhook(control_plane, workdir, defaults, extra_args=extra)


def stop_server(server: WebhookServer) -> None:
    server.stop()


def webhook_configuration(
    url: str, ca_pem: bytes, *, name: str = CONFIG_NAME, failure_policy: str = "Fail", timeout: int = 5
) -> dict[str, Any]:
    """The product's own registration (webhook.admission.registration), pointed at the local server's URL."""
    return mutating_webhook_configuration(
        name=name,
        ca_pem=ca_pem,
        own_namespace=OWN_NAMESPACE,
        url=url,
        failure_policy=failure_policy,
        timeout_seconds=timeout,
    )


def register(k8s: client.ApiClient, body: dict[str, Any]) -> None:
    api = client.AdmissionregistrationV1Api(k8s)
    try:
        api.delete_mutating_webhook_configuration(body["metadata"]["name"])
    except ApiException as exc:
        if exc.status != 404:
            raise
    api.create_mutating_webhook_configuration(body)
    # the API server picks up webhook configurations through an informer: wait until it calls us
    time.sleep(1.5)


def unregister(k8s: client.ApiClient, name: str = CONFIG_NAME) -> None:
    try:
        client.AdmissionregistrationV1Api(k8s).delete_mutating_webhook_configuration(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    time.sleep(1.5)


@pytest.fixture(scope="module")
def webhook_server(
    control_plane: ControlPlane, k8s: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookServer]:
    server = start_server(control_plane, tmp_path_factory.mktemp("webhook"))
    register(k8s, webhook_configuration(server.url, server.ca_pem))
    try:
        yield server
    finally:
        unregister(k8s)
        stop_server(server)
        if os.environ.get("LANES_SHOW_WEBHOOK_LOG"):
            print(server.log())
