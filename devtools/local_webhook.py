"""A real ``lanes-webhook serve`` process next to the local control plane.

Shared by ``make demo`` and the end-to-end tests: a certificate for 127.0.0.1 signed by a fresh CA, a defaults
file, the server watching the control plane for owners, and a wait for ``/readyz``. The process is exactly what
the chart's Deployment runs; only the address differs (a URL registration instead of a Service).
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.controlplane.cluster import ControlPlane, free_port
from webhook.controller.certs import pki


class LocalWebhookError(RuntimeError):
    """The server exited or never became ready; the message carries its log tail."""


@dataclass
class LocalWebhook:
    url: str
    ca_pem: bytes
    process: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path

    def get(self, path: str) -> tuple[int, bytes]:
        """GET over TLS verified against the server's CA; returns (status, body) without raising on HTTP errors."""
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        try:
            with urllib.request.urlopen(self.url + path, context=context, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is None:
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
    """Start the server on a free loopback port and wait until ``/readyz`` answers 200."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca = pki.make_ca("lanes-local-ca", dt.timedelta(days=1))
    leaf = pki.issue(ca, "lanes-webhook", dt.timedelta(days=1), ip_addresses=("127.0.0.1",), dns_names=("localhost",))
    (workdir / "tls.crt").write_bytes(leaf.cert_pem)
    (workdir / "tls.key").write_bytes(leaf.key_pem)
    (workdir / "defaults.json").write_text(json.dumps(defaults))
    port = free_port()
    log_path = workdir / "lanes-webhook.log"
    command = [
        str(Path(sys.executable).parent / "lanes-webhook"),
        "serve",
        f"--cert={workdir / 'tls.crt'}",
        f"--key={workdir / 'tls.key'}",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--kubeconfig={plane.kubeconfig}",
        f"--defaults={workdir / 'defaults.json'}",
        "--shutdown-delay=0",
        *(extra_args or []),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LocalWebhook(f"https://127.0.0.1:{port}", ca.cert_pem, process, log_path, workdir)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalWebhookError(
                f"lanes-webhook exited with {process.returncode}; log {log_path}:\n{server.log()[-3000:]}"
            )
        try:
            if server.get("/readyz")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    server.stop()
    raise LocalWebhookError(
        f"lanes-webhook not ready after {ready_timeout:.0f}s; log {log_path}:\n{server.log()[-3000:]}"
    )
