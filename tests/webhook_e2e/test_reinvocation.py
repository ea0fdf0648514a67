"""Reinvocation: another mutating webhook changes the pod after Lanes; Lanes runs again and duplicates nothing."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.webhook_e2e.conftest import WebhookServer
from tests.webhook_e2e.test_admission import app_pod, assert_injected, create
from webhook.controller.certs import pki

SECOND = "zz-second-webhook"  # configurations are called in name order: after "lanes-e2e"


class _SecondWebhook(BaseHTTPRequestHandler):
    """A real (tiny) third-party mutating webhook: adds a label, an env var and a container."""

    calls = 0

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _SecondWebhook.calls += 1
        patch = [
            {"op": "add", "path": "/metadata/labels/second", "value": "yes"},
            {"op": "add", "path": "/spec/containers/-", "value": {"name": "extra", "image": "registry.example/x:1"}},
        ]
        body = json.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {
                    "uid": review["request"]["uid"],
                    "allowed": True,
                    "patchType": "JSONPatch",
                    "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def second_webhook(k8s: client.ApiClient, tmp_path) -> Iterator[None]:
    ca = pki.make_ca("second-ca", dt.timedelta(hours=1))
    leaf = pki.issue(ca, "second", dt.timedelta(hours=1), ip_addresses=("127.0.0.1",))
    (tmp_path / "c.pem").write_bytes(leaf.cert_pem)
    (tmp_path / "k.pem").write_bytes(leaf.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SecondWebhook)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/"
    body = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": SECOND},
        "webhooks": [
            {
                "name": "second.example.com",
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca.cert_pem).decode()},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
                "namespaceSelector": {"matchLabels": {"lanes": "enabled"}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "reinvocationPolicy": "Never",
                "failurePolicy": "Fail",
            }
        ],
    }
    api = client.AdmissionregistrationV1Api(k8s)
    api.create_mutating_webhook_configuration(body)
    import time

    time.sleep(1.5)
    try:
        yield
    finally:
        with contextlib.suppress(ApiException):
            api.delete_mutating_webhook_configuration(SECOND)
        server.shutdown()
        time.sleep(1.5)


def test_reinvocation_duplicates_nothing(
    webhook_server: WebhookServer, second_webhook: None, k8s: client.ApiClient, enabled_namespace: str
) -> None:
    pod = create(k8s, enabled_namespace, app_pod("twice"))
    assert _SecondWebhook.calls >= 1
    assert pod["metadata"]["labels"]["second"] == "yes"  # the other webhook really ran after Lanes
    assert_injected(pod)
    init_names = [c["name"] for c in pod["spec"]["initContainers"]]
    assert init_names.count("lanes-agent") == 1
    assert len(init_names) == len(set(init_names))
    for container in pod["spec"]["containers"]:
        names = [e["name"] for e in container.get("env", [])]
        assert len(names) == len(set(names)), container["name"]
    gates = [g["conditionType"] for g in pod["spec"]["readinessGates"]]
    assert gates.count("lanes.io/registered") == 1
