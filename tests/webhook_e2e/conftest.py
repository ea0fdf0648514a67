"""A real `lanes-webhook serve` process registered with the real API server.

The server runs as a subprocess (exactly what the Deployment runs) on a loopback port with a certificate for
127.0.0.1 and watches the test control plane for owners; a MutatingWebhookConfiguration shaped like the chart's
points at it with ``clientConfig.url``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devtools import local_webhook
from devtools.controlplane import ControlPlane
from devtools.local_webhook import LocalWebhook, local_registration, start_local_webhook

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
    url: str, ca_pem: bytes | None, *, name: str = CONFIG_NAME, failure_policy: str = "Fail", timeout: int = 5
) -> dict[str, Any]:
    """The product's own registration (webhook.admission.registration), pointed at the local server's URL."""
    return local_registration(
        name, url, own_namespace=OWN_NAMESPACE, ca_pem=ca_pem, failure_policy=failure_policy, timeout_seconds=timeout
    )


def register(k8s: client.ApiClient, body: dict[str, Any]) -> None:
    """Replace the registration and wait until the API server calls it (it loads them through an informer)."""
    local_webhook.register(k8s, body)


def unregister(k8s: client.ApiClient, name: str = CONFIG_NAME) -> None:
    local_webhook.unregister(k8s, name)


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
