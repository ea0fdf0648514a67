"""Real TLS servers and certificates for the admission server's HTTP tests.

Two ways to run the server:

* :class:`ThreadServer`: the production server object (``webhook.admission.serving.create_server``) in a background
  thread of the test process, on an OS-assigned loopback port. Fast, and lets a test reach into the app (metrics,
  lifecycle, the certificate reloader) or inject a fault into the core with ``monkeypatch``.
* :class:`CliServer`: a ``lanes-webhook serve`` subprocess, exactly what the Deployment runs; used where the
  process itself is the subject (signals, exit status, certificate rotation without a restart).

Certificates are generated with trustme and laid out like a Kubernetes Secret volume (``tls.crt ->
..data/tls.crt``, ``..data -> ..<timestamp>``), so rotation is the kubelet's atomic symlink swap.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from webhook.admission.app import Lifecycle, create_app
from webhook.admission.metrics import Metrics
from webhook.admission.serving import LanesServer, create_server
from webhook.contract.defaults import ClusterDefaults
from webhook.injection.admit import OwnerLookup

HOST = "127.0.0.1"

# --- certificates -----------------------------------------------------------------------------------------


@dataclass
class Pki:
    """A CA and a serving certificate for localhost/127.0.0.1."""

    ca: trustme.CA
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def new(cls) -> Pki:
        ca = trustme.CA()
        leaf = ca.issue_cert("localhost", HOST)
        return cls(ca, b"".join(b.bytes() for b in leaf.cert_chain_pems), leaf.private_key_pem.bytes())

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    @property
    def leaf_der(self) -> bytes:
        """The serving certificate as DER, comparable with ``SSLObject.getpeercert(binary_form=True)``."""
        return x509.load_pem_x509_certificate(self.cert_pem).public_bytes(serialization.Encoding.DER)


def client_context(*pkis: Pki, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A verifying client context trusting the given CAs."""
    context = ssl.create_default_context()
    for pki in pkis:
        context.load_verify_locations(cadata=pki.ca_pem.decode())
    if maximum is not None:
        context.maximum_version = maximum
    return context


class SecretVolume:
    """A directory laid out like a mounted Secret; :meth:`publish` swaps content the way the kubelet does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.cert = root / "tls.crt"
        self.key = root / "tls.key"

    def publish(self, cert_pem: bytes, key_pem: bytes) -> None:
        version = self.root / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{uuid.uuid4().hex[:8]}"
        version.mkdir()
        (version / "tls.crt").write_bytes(cert_pem)
        (version / "tls.key").write_bytes(key_pem)
        staging = self.root / "..data_tmp"
        staging.symlink_to(version.name)
        os.replace(staging, self.root / "..data")  # the atomic step
        for name in ("tls.crt", "tls.key"):
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")


# --- servers ----------------------------------------------------------------------------------------------


@dataclass
class ThreadServer:
    """The production server running in a background thread; ``client`` trusts the server's CA."""

    server: LanesServer
    thread: threading.Thread
    port: int
    pki: Pki
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, verify=client_context(self.pki), timeout=30)

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    @property
    def metrics(self) -> Metrics:
        metrics: Metrics = self.server.config.app.state.metrics  # type: ignore[union-attr]
        return metrics

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "server thread did not stop"


def start_thread_server(
    pki: Pki,
    cert_file: Path,
    key_file: Path,
    *,
    owners: OwnerLookup | None = None,
    lifecycle: Lifecycle | None = None,
    max_body_bytes: int | None = None,
    cert_check_interval: float = 3600.0,
    defaults: ClusterDefaults | None = None,
) -> ThreadServer:
    kwargs: dict[str, Any] = {}
    if max_body_bytes is not None:
        kwargs["max_body_bytes"] = max_body_bytes
    app = create_app(defaults or ClusterDefaults(), owners, metrics=Metrics(), lifecycle=lifecycle, **kwargs)
    server = create_server(
        app,
        host=HOST,
        port=0,
        cert_file=cert_file,
        key_file=key_file,
        shutdown_delay=0,
        cert_check_interval=cert_check_interval,
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), name="webhook-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "server thread died during startup"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return ThreadServer(server, thread, port, pki)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class CliServer:
    """A ``lanes-webhook serve`` subprocess."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)


def lanes_webhook() -> str:
    return str(Path(sys.executable).parent / "lanes-webhook")


def start_cli_server(volume: SecretVolume, pki: Pki, workdir: Path, *extra: str) -> CliServer:
    port = free_port()
    log_path = workdir / f"webhook-{port}.log"
    command = [
        lanes_webhook(),
        "serve",
        "--cert",
        str(volume.cert),
        "--key",
        str(volume.key),
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-owner-cache",
        *extra,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = CliServer(process, port, log_path)
    context = client_context(pki)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise AssertionError(f"lanes-webhook exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/readyz", verify=context, timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"lanes-webhook not ready:\n{server.log()}"
        time.sleep(0.05)
