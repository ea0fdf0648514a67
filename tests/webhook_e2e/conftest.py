"""A real `lanes-webhook serve` process registered with the real API server.

The server runs as a subprocess (exactly what the Deployment runs) on a loopback port with a certificate for
127.0.0.1 and watches the test control plane for owners; a MutatingWebhookConfiguration shaped like the chart's
points at it with ``clientConfig.url``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook import pki
from webhook.envtest import ControlPlane
from webhook.envtest.cluster import free_port
from webhook.registration import mutating_webhook_configuration

OWN_NAMESPACE = "lanes-system"
HELPER_IMAGE = "registry.example/lanes-helper:test"
CONFIG_NAME = "lanes-e2e"


@dataclass
class WebhookServer:
    url: str
    ca_pem: bytes
    process: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str) -> tuple[int, bytes]:
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        try:
            with urllib.request.urlopen(self.url + path, context=context, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(control_plane: ControlPlane, workdir: Path, *, extra: list[str] | None = None) -> WebhookServer:
    workdir.mkdir(parents=True, exist_ok=True)
    ca = pki.make_ca("lanes-e2e-ca", dt.timedelta(days=1))
    leaf = pki.issue(ca, "lanes-webhook", dt.timedelta(days=1), ip_addresses=("127.0.0.1",), dns_names=("localhost",))
    (workdir / "tls.crt").write_bytes(leaf.cert_pem)
    (workdir / "tls.key").write_bytes(leaf.key_pem)
    (workdir / "defaults.yaml").write_text(json.dumps({"own_namespace": OWN_NAMESPACE, "helper_image": HELPER_IMAGE}))
    port = free_port()
    log_path = workdir / "webhook.log"
    command = [
        str(Path(sys.executable).parent / "lanes-webhook"),
        "serve",
        f"--cert={workdir / 'tls.crt'}",
        f"--key={workdir / 'tls.key'}",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--kubeconfig={control_plane.kubeconfig}",
        f"--defaults={workdir / 'defaults.yaml'}",
        "--shutdown-delay=0",
        *(extra or []),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = WebhookServer(f"https://127.0.0.1:{port}", ca.cert_pem, process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"lanes-webhook exited with {process.returncode}:\n{server.log()[-3000:]}")
        try:
            if server.get("/readyz")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"lanes-webhook not ready after 30s:\n{server.log()[-3000:]}")


def stop_server(server: WebhookServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def webhook_configuration(
    url: str, ca_pem: bytes, *, name: str = CONFIG_NAME, failure_policy: str = "Fail", timeout: int = 5
) -> dict[str, Any]:
    """The product's own registration (webhook.registration), pointed at the local server's URL."""
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
