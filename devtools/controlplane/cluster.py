"""Start and stop a real local control plane.

Each component is a child process on loopback ports with its own log file. Children get ``PR_SET_PDEATHSIG``
so they die with the process that started them even when it is killed with SIGKILL (no orphan etcd holding a
port after an interrupted test run); ``stop()`` terminates them gracefully in reverse start order first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.controlplane.binaries import KUBERNETES_VERSION, ensure_binaries
from devtools.hostprocs import killed_with_parent
from webhook.controller.certs import pki

#: The Service network; 10.0.0.1 is the `kubernetes` Service address, in the API server certificate.
SERVICE_CIDR = "10.0.0.0/24"

KWOK_STAGES = Path(__file__).parent / "kwok" / "stages.yaml"


class ControlPlaneError(RuntimeError):
    """A component failed to start or stopped; the message names it and shows its log tail."""


def free_port() -> int:
    """A loopback port that was free a moment ago (components report a clear error if it was taken since)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line[:400] for line in text[-lines:])


@dataclass
class Component:
    """One running control-plane process."""

    name: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        log.write(("\n$ " + " ".join(self.args) + "\n").encode())
        log.flush()
        try:
            self.process = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=killed_with_parent(signal.SIGKILL),
            )
        finally:
            log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def failure(self, what: str) -> ControlPlaneError:
        code = None if self.process is None else self.process.poll()
        status = f"exited with {code}" if code is not None else "is running"
        return ControlPlaneError(f"{self.name} {what} ({status}); log: {self.log_path}\n{_tail(self.log_path)}")

    def stop(self, timeout: float = 15) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class ControlPlane:
    """etcd + kube-apiserver, optionally kube-controller-manager, kube-scheduler and kwok.

    Use as a context manager, or call start()/stop(). ``kubeconfig`` is a system:masters admin kubeconfig.
    """

    controller_manager: bool = True
    scheduler: bool = True
    kwok: bool = False
    apiserver_args: list[str] = field(default_factory=list)
    workdir: Path | None = None
    #: kwok's Stage documents (node and pod lifecycle); tests may pass their own file.
    kwok_stages: Path = KWOK_STAGES
    startup_timeout: float = 90

    components: dict[str, Component] = field(default_factory=dict, init=False)
    url: str = field(default="", init=False)
    apiserver_port: int = field(default=0, init=False)
    etcd_url: str = field(default="", init=False)
    _bin_dir: Path = field(default=Path("."), init=False)
    _owns_workdir: bool = field(default=False, init=False)

    # -- files --------------------------------------------------------------------------------------------

    def _write_pki(self) -> None:
        assert self.workdir is not None
        pki_dir = self.workdir / "pki"
        pki_dir.mkdir(parents=True, exist_ok=True)
        year = dt.timedelta(days=365)
        ca = pki.make_ca("lanes-envtest-ca", year)
        serving = pki.issue(
            ca,
            "kube-apiserver",
            year,
            dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            ip_addresses=("127.0.0.1", "10.0.0.1"),
        )
        admin = pki.issue(ca, "lanes-admin", year, organizations=("system:masters",), server=False, client=True)
        sa_key, sa_pub = pki.make_signing_key()
        files = {
            "ca.crt": ca.cert_pem,
            "ca.key": ca.key_pem,
            "apiserver.crt": serving.cert_pem,
            "apiserver.key": serving.key_pem,
            "admin.crt": admin.cert_pem,
            "admin.key": admin.key_pem,
            "sa.key": sa_key,
            "sa.pub": sa_pub,
        }
        for name, data in files.items():
            path = pki_dir / name
            path.write_bytes(data)
            path.chmod(0o600)

    def path(self, name: str) -> Path:
        assert self.workdir is not None
        return self.workdir / "pki" / name

    @property
    def ca_file(self) -> Path:
        return self.path("ca.crt")

    @property
    def kubeconfig(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "admin.kubeconfig"

    @property
    def logs_dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "logs"

    def write_kubeconfig(self, path: Path, user: str, cert: Path, key: Path) -> Path:
        """A kubeconfig at ``path`` for ``user``, authenticated by a client certificate this plane's CA signed
        (the admin's, or a test's restricted user's); readable by its owner only."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "envtest", "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)}}
            ],
            "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
            "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": user}}],
            "current-context": "envtest",
        }
        path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
        path.chmod(0o600)
        return path

    # -- HTTP to the API server (stdlib: usable before any client library is configured) -----------------

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.path("admin.crt")), str(self.path("admin.key")))
        return context

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        """GET against the API server as admin; returns (status, body) without raising on HTTP errors."""
        request = urllib.request.Request(self.url + path)
        try:
            with urllib.request.urlopen(request, context=self.ssl_context(), timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def version(self) -> dict[str, Any]:
        status, body = self.get("/version")
        if status != 200:
            raise ControlPlaneError(f"/version answered {status}: {body[:200]!r}")
        result: dict[str, Any] = json.loads(body)
        return result

    # -- lifecycle -----------------------------------------------------------------------------------------

    def _wait(self, component: Component, ready: Any, what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not component.alive():
                raise component.failure(f"exited while {what}")
            with contextlib.suppress(OSError, urllib.error.URLError, ssl.SSLError):
                if ready():
                    return
            time.sleep(0.2)
        raise component.failure(f"not ready after {self.startup_timeout:.0f}s ({what})")

    def _start_etcd(self, bin_dir: Path) -> None:
        assert self.workdir is not None
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        etcd = Component(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",  # test data: speed over durability
                "--log-level=warn",
            ],
            self.logs_dir / "etcd.log",
        )
        self.components["etcd"] = etcd
        etcd.start()

        def healthy() -> bool:
            with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as response:
                return bool(json.loads(response.read()).get("health") == "true")

        self._wait(etcd, healthy, "waiting for /health")

    def apiserver_command(self, bin_dir: Path) -> list[str]:
        return [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.apiserver_port}",
            f"--cert-dir={self.workdir}/apiserver-certs",
            f"--tls-cert-file={self.path('apiserver.crt')}",
            f"--tls-private-key-file={self.path('apiserver.key')}",
            f"--client-ca-file={self.ca_file}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.path('sa.pub')}",
            f"--service-account-signing-key-file={self.path('sa.key')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # the `kubernetes` Endpoints may not point at loopback; envtest does the same
            "--endpoint-reconciler-type=none",
            *self.apiserver_args,
        ]

    def start_apiserver(self, bin_dir: Path | None = None) -> None:
        """(Re)start kube-apiserver on the same port; also used by tests that restart it mid-run."""
        bin_dir = bin_dir or self._bin_dir
        apiserver = Component("kube-apiserver", self.apiserver_command(bin_dir), self.logs_dir / "kube-apiserver.log")
        self.components["kube-apiserver"] = apiserver
        apiserver.start()

        def ready() -> bool:
            status, _ = self.get("/readyz", timeout=2)
            return status == 200

        self._wait(apiserver, ready, f"waiting for {self.url}/readyz")

    def stop_apiserver(self) -> None:
        self.components["kube-apiserver"].stop()

    def controller_manager_host_dirs(self) -> list[str]:
        """Flags for the directories kube-controller-manager would otherwise create on the host.

        Its FlexVolume prober creates ``--flex-volume-plugin-dir`` (default
        /usr/libexec/kubernetes/kubelet-plugins/volume/exec/) when it starts, and a local run must write nothing
        outside its own folder. With ``--secure-port=0`` and no ``--cert-dir`` it writes nothing else.
        """
        assert self.workdir is not None
        return [f"--flex-volume-plugin-dir={self.workdir / 'kube-controller-manager' / 'flexvolume'}"]

    def _start_kube_component(self, name: str, extra: list[str]) -> None:
        component = Component(
            name,
            [str(self._bin_dir / name), f"--kubeconfig={self.kubeconfig}", "--leader-elect=false", *extra],
            self.logs_dir / f"{name}.log",
        )
        self.components[name] = component
        component.start()

    def start(self) -> ControlPlane:
        needed = ["etcd", "kube-apiserver"]
        if self.controller_manager:
            needed.append("kube-controller-manager")
        if self.scheduler:
            needed.append("kube-scheduler")
        if self.kwok:
            needed.append("kwok")
        self._bin_dir = ensure_binaries(tuple(needed))
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="lanes-envtest-"))
            self._owns_workdir = True
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._write_pki()
        try:
            self._start_etcd(self._bin_dir)
            self.apiserver_port = free_port()
            self.url = f"https://127.0.0.1:{self.apiserver_port}"
            self.write_kubeconfig(self.kubeconfig, "admin", self.path("admin.crt"), self.path("admin.key"))
            self.start_apiserver(self._bin_dir)
            if self.controller_manager:
                self._start_kube_component(
                    "kube-controller-manager",
                    [
                        "--secure-port=0",  # also: no serving certificate written anywhere
                        *self.controller_manager_host_dirs(),
                        f"--service-account-private-key-file={self.path('sa.key')}",
                        f"--root-ca-file={self.ca_file}",
                        f"--cluster-signing-cert-file={self.ca_file}",
                        f"--cluster-signing-key-file={self.path('ca.key')}",
                        "--use-service-account-credentials=false",
                        "--controllers=*",
                        f"--service-cluster-ip-range={SERVICE_CIDR}",
                    ],
                )
            if self.scheduler:
                self._start_kube_component("kube-scheduler", ["--secure-port=0"])
            if self.kwok:
                self._start_kwok()
            time.sleep(0.5)
            for component in self.components.values():
                if not component.alive():
                    raise component.failure("exited during startup")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_kwok(self) -> None:
        kwok = Component(
            "kwok",
            [
                str(self._bin_dir / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-ip=10.244.0.1",
                "--cidr=10.244.0.0/16",
                f"--server-address=127.0.0.1:{free_port()}",
                f"--config={self.kwok_stages}",
            ],
            self.logs_dir / "kwok.log",
        )
        self.components["kwok"] = kwok
        kwok.start()

    def stop(self, remove_workdir: bool = False) -> None:
        """Stop every component, newest first; safe to call twice. Logs stay unless ``remove_workdir``."""
        for component in reversed(list(self.components.values())):
            component.stop()
        if remove_workdir and self.workdir is not None and self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def check_alive(self) -> None:
        """Raise with the log tail of the first component that died."""
        for component in self.components.values():
            if not component.alive():
                raise component.failure("is not running")

    def describe_logs(self) -> str:
        return "\n".join(f"  {c.name}: {c.log_path}" for c in self.components.values())

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[ControlPlane]:
    """``with running(kwok=True) as cp: ...``"""
    plane = ControlPlane(**kwargs)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop(remove_workdir=True)


__all__ = ["KUBERNETES_VERSION", "ControlPlane", "ControlPlaneError", "free_port", "running"]
