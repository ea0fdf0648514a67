"""A real ``lanes-webhook serve`` process next to the local control plane, and its registration.

Shared by ``make demo`` and the end-to-end and controller tests. The process is exactly what the chart's
Deployment runs; only the address differs: a loopback port registered with ``clientConfig.url`` instead of a
Service. The registration is the product's own (webhook.admission.registration), so what the local runs exercise
is what users install.

Two ways to get the serving certificate, as in a cluster: :func:`start_local_webhook` makes one for 127.0.0.1
signed by a fresh CA (the chart's cert-manager mode, roughly); a :class:`LocalWebhook` started on a ``cert_dir``
serves whatever files the controller writes there (the controller's self-managed mode).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.controlplane.binaries import REPO_ROOT
from devtools.controlplane.cluster import ControlPlane, free_port
from webhook.admission.registration import mutating_webhook_configuration
from webhook.controller.certs import pki

#: Long enough for the API server's webhook informer to load a new or deleted configuration.
REGISTRATION_SETTLE = 1.5


class LocalWebhookError(RuntimeError):
    """The server exited or never became ready; the message carries its log tail."""


def checkout_env() -> dict[str, str]:
    """The environment for Lanes' own processes: this checkout first on the path, whatever is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def spawn_logged(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start one of Lanes' own processes from this checkout, stdout and stderr appended to ``log_path`` (a restart
    on the same log keeps the first run's lines)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO_ROOT, env=checkout_env()
        )


@dataclass
class LocalWebhook:
    """``lanes-webhook serve`` on a loopback port, serving ``cert_dir``/tls.crt and tls.key.

    ``ca_pem``, when known, is what readiness is verified against (``/readyz`` over TLS). Without it, ready means
    the port accepts connections: the certificate may be one nobody here can verify yet, or one made invalid on
    purpose. ``port`` may be given to start a server where a previous one listened (the registration still points
    there).
    """

    cert_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    #: ``serve`` flags beyond the certificate, the address and ``--shutdown-delay=0``.
    args: list[str] = field(default_factory=list)
    ca_pem: bytes | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).parent / "lanes-webhook"),
            "serve",
            f"--cert={self.cert_dir / 'tls.crt'}",
            f"--key={self.cert_dir / 'tls.key'}",
            "--host=127.0.0.1",
            f"--port={self.port}",
            "--shutdown-delay=0",  # nobody routes through a Service here: no endpoints to drain
            *self.args,
        ]

    def start(self, ready_timeout: float = 30) -> LocalWebhook:
        """Start the server and wait until it is ready (see the class docstring)."""
        self.process = spawn_logged(self.command(), self.log_path)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalWebhookError(
                    f"lanes-webhook exited with {self.process.returncode}; log {self.log_path}:\n{self.log()[-3000:]}"
                )
            if self._ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise LocalWebhookError(
            f"lanes-webhook not ready after {ready_timeout:.0f}s; log {self.log_path}:\n{self.log()[-3000:]}"
        )

    def _ready(self) -> bool:
        if self.ca_pem is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
            return False
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False

    def get(self, path: str) -> tuple[int, bytes]:
        """GET over TLS verified against ``ca_pem``; returns (status, body) without raising on HTTP errors."""
        if self.ca_pem is None:
            raise ValueError("no CA to verify the server with: pass ca_pem")
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        try:
            with urllib.request.urlopen(self.url + path, context=context, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_local_webhook(
    plane: ControlPlane,
    workdir: Path,
    defaults: dict[str, Any],
    *,
    extra_args: list[str] | None = None,
    ready_timeout: float = 30,
) -> LocalWebhook:
    """A server with its own certificate for 127.0.0.1 and a ``defaults`` file, watching ``plane`` for owners."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca = pki.make_ca("lanes-local-ca", dt.timedelta(days=1))
    leaf = pki.issue(ca, "lanes-webhook", dt.timedelta(days=1), ip_addresses=("127.0.0.1",), dns_names=("localhost",))
    (workdir / "tls.crt").write_bytes(leaf.cert_pem)
    (workdir / "tls.key").write_bytes(leaf.key_pem)
    (workdir / "defaults.json").write_text(json.dumps(defaults))
    server = LocalWebhook(
        workdir,
        workdir / "lanes-webhook.log",
        args=[f"--kubeconfig={plane.kubeconfig}", f"--defaults={workdir / 'defaults.json'}", *(extra_args or [])],
        ca_pem=ca.cert_pem,
    )
    return server.start(ready_timeout)


# --- registration ----------------------------------------------------------------------------------------------


def local_registration(
    name: str,
    url: str,
    *,
    own_namespace: str,
    ca_pem: bytes | None,
    failure_policy: str = "Fail",
    timeout_seconds: int = 5,
    namespace_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The product's MutatingWebhookConfiguration, calling ``url``.

    ``failurePolicy: Fail`` by default, unlike the product: locally, a pod that silently skipped the webhook
    hides a bug. ``ca_pem=None`` leaves ``caBundle`` out for the controller to publish, as a ``helm install``
    does. ``namespace_labels`` narrows the selector further (``lanes=enabled`` and these labels), so a test's
    registration only sees that test's namespaces in a cluster other tests share.
    """
    body = mutating_webhook_configuration(
        name=name,
        ca_pem=ca_pem or b"",
        own_namespace=own_namespace,
        url=url,
        failure_policy=failure_policy,
        timeout_seconds=timeout_seconds,
    )
    for hook in body["webhooks"]:
        if ca_pem is None:
            del hook["clientConfig"]["caBundle"]
        if namespace_labels:
            hook["namespaceSelector"]["matchLabels"] = dict(namespace_labels)
    return body


def register(api_client: Any, body: dict[str, Any], settle: float = REGISTRATION_SETTLE) -> None:
    """Create (or replace) the configuration, then wait until the API server calls it."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api: Any = client.AdmissionregistrationV1Api(api_client)  # plain dicts: the typed models add nothing
    try:
        api.delete_mutating_webhook_configuration(body["metadata"]["name"])
    except ApiException as exc:
        if exc.status != 404:
            raise
    api.create_mutating_webhook_configuration(body)
    time.sleep(settle)


def unregister(api_client: Any, name: str, settle: float = REGISTRATION_SETTLE) -> None:
    """Delete the configuration (absent is fine), then wait until the API server stopped calling it."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.AdmissionregistrationV1Api(api_client).delete_mutating_webhook_configuration(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    time.sleep(settle)
