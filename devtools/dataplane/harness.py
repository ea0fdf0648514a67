"""A real Gateway API data plane for tests and the demo: Traefik plus sample-app backends in a private namespace.

What runs, and where:

* **Traefik v3.6** (built from Go modules, :mod:`devtools.dataplane.traefik`) runs out of cluster with its
  Kubernetes Gateway provider, reading the test API server like any controller. It serves two Gateways of the
  GatewayClass ``traefik`` (controller ``traefik.io/gateway-controller``) in namespace ``lanes-gateways``: ``edge``
  (clients' requests, port 8000) and ``mesh`` (the shared east-west gateway, port 8001) at ``10.77.0.1``.
* **Backends** are Pods on a kwok node (real API objects: the real EndpointSlice controller turns them into
  EndpointSlices, the Lane reconciler sees their labels) whose "container" is a sample-app process
  (examples/sample-app/app.py) listening on the pod IP. Stand-in, until the real node (devtools/realnode) runs
  them as containers: kwok does not run processes, so this harness starts one per pod and acts as the kubelet's
  readiness prober, setting the pod's readiness gate ``lanes.test/serving`` once the process answers /healthz
  (:meth:`Backend.set_ready` flips it, so readiness changes reach the EndpointSlices the way a failing probe's
  would). Apps reach the next hop through the east-west gateway: ``CALL=b.<namespace>@http://10.77.0.1:8001/``
  (the Host header picks the service; the namespace keeps tests' routes for the same app name apart).
* Everything listens inside a **network + mount namespace the run creates** (``unshare``; held by
  :mod:`devtools.dataplane.inside`): the gateway and pod IPs are /32 aliases on its ``lo``, nothing changes on
  the host. Traefik reaches the API server through a Unix socket relay; tests reach the edge gateway through a
  host loopback port forwarded into the namespace (:class:`devtools.realnode.dial.Forwarder`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.controlplane.binaries import REPO_ROOT, BinaryError
from devtools.controlplane.cluster import ControlPlane
from devtools.dataplane import crds
from devtools.dataplane.traefik import ensure_traefik
from devtools.hostprocs import die_with_parent, linux_root_preflight
from devtools.realnode.dial import DialServer, Forwarder
from webhook.kube.client import Kube, KubeError, path_segment

GATEWAY_IP = "10.77.0.1"
EDGE_PORT = 8000
MESH_PORT = 8001
TRAEFIK_API_PORT = 9000
GATEWAY_NAMESPACE = "lanes-gateways"
GATEWAY_CLASS = "traefik"
CONTROLLER_NAME = "traefik.io/gateway-controller"
EDGE_GATEWAY = "edge"
MESH_GATEWAY = "mesh"
#: The kwok node the backend pods are bound to (kwok assigns their IPs from 10.244.0.0/16).
NODE_NAME = "lanes-dataplane"
#: The readiness gate this harness sets, as a kubelet's readiness probe would make the pod Ready.
SERVING_GATE = "lanes.test/serving"
SAMPLE_APP = REPO_ROOT / "examples" / "sample-app" / "app.py"

_GW_API = "/apis/gateway.networking.k8s.io/v1"


class DataPlaneError(RuntimeError):
    """The data plane failed to start or a backend failed; the message says which and where its log is."""


def preflight() -> str | None:
    """Why the data plane cannot run here, in one line; None when it can."""
    basic = linux_root_preflight(
        "the data plane",
        linux="Linux network namespaces",
        root="(it creates a network namespace and adds addresses in it)",
        commands=("unshare", "nsenter", "ip"),
    )
    if basic is not None:
        return basic
    if not SAMPLE_APP.is_file():
        return f"{SAMPLE_APP} is missing"
    return None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join("    " + line[:300] for line in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "    (no log)"


def _stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 5) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass
class Response:
    """An HTTP answer from a gateway; ``json`` is the decoded body when it is JSON."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def hops(self) -> list[dict[str, Any]]:
        """The chain of sample-app answers (a, then what a called, ...), following each first call."""
        chain: list[dict[str, Any]] = []
        node: Any = self.json
        while isinstance(node, dict) and "service" in node:
            chain.append(node)
            calls = node.get("calls") or []
            node = calls[0] if calls else None
        if isinstance(node, dict) and "error" in node:
            chain.append(node)
        return chain

    def path(self) -> list[str]:
        """``["a-gray", "b-base", "c-gray"]``: who answered each hop, with its lane (``error`` for a failed call)."""
        return [f"{h['service']}-{h['lane']}" if "service" in h else f"error: {h['error']}" for h in self.hops()]


@dataclass
class Backend:
    """One pod of an app in a lane, served by a sample-app process on the pod's IP inside the namespace."""

    plane: DataPlane
    namespace: str
    pod: str
    app: str
    lane: str
    ip: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def set_ready(self, ready: bool) -> None:
        """Flip the pod's readiness as a failing (or recovering) readiness probe would: the EndpointSlice
        controller then marks its endpoint ready or not."""
        self.plane.set_pod_ready(self.namespace, self.pod, ready)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, delete_pod: bool = True) -> None:
        """End the process and (by default) delete the pod, like scaling its Deployment down."""
        _stop_process(self.process)
        if delete_pod:
            with contextlib.suppress(KubeError):
                self.plane.kube.delete(
                    f"/api/v1/namespaces/{self.namespace}/pods/{path_segment(self.pod)}", {"gracePeriodSeconds": 0}
                )
        self.plane.backends.pop((self.namespace, self.pod), None)


@dataclass
class DataPlane:
    """Traefik + Gateways + backends; ``start()`` / ``stop()`` or a context manager."""

    control_plane: ControlPlane
    api_client: Any
    workdir: Path | None = None
    startup_timeout: float = 60
    #: Keep a work folder the data plane made itself (logs, state.json) after ``stop()``; set for a failed run.
    keep_workdir: bool = False

    kube: Kube = field(init=False)
    backends: dict[tuple[str, str], Backend] = field(default_factory=dict, init=False)
    traefik: subprocess.Popen[bytes] | None = field(default=None, init=False)
    holder: subprocess.Popen[bytes] | None = field(default=None, init=False)
    edge_port: int = field(default=0, init=False)
    timings: dict[str, float] = field(default_factory=dict, init=False)
    _host_dial: DialServer | None = field(default=None, init=False)
    _forwarders: dict[tuple[str, int], Forwarder] = field(default_factory=dict, init=False)
    _pid: int = field(default=0, init=False)
    _owns_workdir: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.kube = Kube(self.api_client)

    # -- namespace --------------------------------------------------------------------------------------------

    @property
    def logs_dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "logs"

    @property
    def traefik_log(self) -> Path:
        return self.logs_dir / "traefik.log"

    def nsenter(self, args: Sequence[str]) -> list[str]:
        """``args`` as a command line that runs inside the run's network and mount namespaces."""
        return ["nsenter", "-t", str(self._pid), "-n", "-m", "--", *args]

    def add_address(self, ip: str) -> None:
        """A /32 alias on the namespace's ``lo`` (idempotent): something inside may now listen on ``ip``."""
        result = subprocess.run(
            self.nsenter(["ip", "addr", "add", f"{ip}/32", "dev", "lo"]), capture_output=True, text=True
        )
        if result.returncode != 0 and not any(m in result.stderr for m in ("File exists", "already assigned")):
            raise DataPlaneError(f"ip addr add {ip}/32 dev lo (in the namespace): {result.stderr.strip()}")

    def forward(self, host: str, port: int) -> int:
        """A host loopback port carried to ``host:port`` inside the namespace (one per target, reused)."""
        assert self.workdir is not None
        key = (host, port)
        if key not in self._forwarders:
            self._forwarders[key] = Forwarder(self.workdir / "dial.sock", host, port)
        return self._forwarders[key].port

    def _start_namespace(self) -> None:
        assert self.workdir is not None
        self._host_dial = DialServer(self.workdir / "host.sock")
        log = (self.logs_dir / "namespace.log").open("ab")
        self.holder = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--mount",
                "--propagation",
                "private",
                "--",
                sys.executable,
                "-m",
                "devtools.dataplane.inside",
                str(self.workdir),
                str(self.control_plane.apiserver_port),
            ],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        log.close()
        state_path = self.workdir / "state.json"
        deadline = time.monotonic() + 15
        while not state_path.is_file():
            if self.holder.poll() is not None or time.monotonic() > deadline:
                failed = self.workdir / "failed.txt"
                reason = failed.read_text() if failed.is_file() else _tail(self.logs_dir / "namespace.log")
                raise DataPlaneError(f"the data-plane namespace did not come up: {reason}")
            time.sleep(0.05)
        state = json.loads(state_path.read_text())
        self._pid = int(state["pid"])
        self._inner_api_port = int(state["api_port"])
        self.add_address(GATEWAY_IP)

    def _inner_kubeconfig(self) -> Path:
        """The admin kubeconfig, but with the API server at the relay's port inside the namespace."""
        assert self.workdir is not None
        plane = self.control_plane
        path = self.workdir / "traefik.kubeconfig"
        plane.write_kubeconfig(path, "admin", plane.path("admin.crt"), plane.path("admin.key"))
        config = json.loads(path.read_text())
        config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{self._inner_api_port}"
        path.write_text(json.dumps(config, indent=2))
        return path

    # -- Gateway API objects ------------------------------------------------------------------------------------

    def _apply(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.kube.request(
            "PATCH",
            path,
            query={"fieldManager": "lanes-dataplane", "force": True},
            body=json.dumps(body),
            content_type="application/apply-patch+yaml",
        )

    def _gateways(self) -> None:
        self._apply(
            f"/api/v1/namespaces/{GATEWAY_NAMESPACE}",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NAMESPACE}},
        )
        self._apply(
            f"{_GW_API}/gatewayclasses/{GATEWAY_CLASS}",
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": GATEWAY_CLASS},
                "spec": {"controllerName": CONTROLLER_NAME},
            },
        )
        for name, port in ((EDGE_GATEWAY, EDGE_PORT), (MESH_GATEWAY, MESH_PORT)):
            self._apply(
                f"{_GW_API}/namespaces/{GATEWAY_NAMESPACE}/gateways/{name}",
                {
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "Gateway",
                    "metadata": {"name": name, "namespace": GATEWAY_NAMESPACE},
                    "spec": {
                        "gatewayClassName": GATEWAY_CLASS,
                        "listeners": [
                            {
                                "name": "http",
                                "protocol": "HTTP",
                                "port": port,
                                "allowedRoutes": {"namespaces": {"from": "All"}},
                            }
                        ],
                    },
                },
            )

    def gateway_programmed(self, name: str) -> bool:
        gateway = self.kube.get(f"{_GW_API}/namespaces/{GATEWAY_NAMESPACE}/gateways/{name}")
        conditions = gateway.get("status", {}).get("conditions", [])
        return any(c.get("type") == "Programmed" and c.get("status") == "True" for c in conditions)

    @staticmethod
    def parent_ref(gateway: str) -> dict[str, str]:
        """A ``parentRefs`` entry for one of this data plane's Gateways (``edge`` or ``mesh``)."""
        group = "gateway.networking.k8s.io"
        return {"group": group, "kind": "Gateway", "name": gateway, "namespace": GATEWAY_NAMESPACE}

    # -- Traefik --------------------------------------------------------------------------------------------------

    def traefik_command(self, binary: Path) -> list[str]:
        return [
            str(binary),
            "--providers.kubernetesgateway=true",
            f"--providers.kubernetesgateway.statusaddress.ip={GATEWAY_IP}",
            f"--entrypoints.edge.address={GATEWAY_IP}:{EDGE_PORT}",
            f"--entrypoints.mesh.address={GATEWAY_IP}:{MESH_PORT}",
            f"--entrypoints.traefik.address={GATEWAY_IP}:{TRAEFIK_API_PORT}",
            "--api.insecure=true",
            "--api.dashboard=false",  # the module has no built dashboard; the JSON API still answers
            "--global.checknewversion=false",
            "--global.sendanonymoususage=false",
            "--log.level=INFO",
        ]

    def _start_traefik(self) -> None:
        binary = ensure_traefik()
        env = dict(os.environ, KUBECONFIG=str(self._inner_kubeconfig()))
        log = self.traefik_log.open("ab")
        command = self.traefik_command(binary)
        log.write(("$ " + " ".join(command) + "\n").encode())
        log.flush()
        self.traefik = subprocess.Popen(
            self.nsenter(command),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        log.close()

    def _wait(self, what: str, ready: Any, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        while True:
            if self.traefik is not None and self.traefik.poll() is not None:
                code = self.traefik.returncode
                raise DataPlaneError(f"traefik exited ({code}) while {what}:\n{_tail(self.traefik_log)}")
            with contextlib.suppress(OSError, KubeError, http.client.HTTPException):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise DataPlaneError(f"timed out {what}; traefik log {self.traefik_log}:\n{_tail(self.traefik_log)}")
            time.sleep(0.1)

    def routers(self) -> dict[str, Any]:
        """Traefik's HTTP routers by name (its JSON API): what it has actually programmed."""
        status, _, body = self._get(GATEWAY_IP, TRAEFIK_API_PORT, "/api/http/routers", {})
        if status != 200:
            raise DataPlaneError(f"traefik /api/http/routers answered {status}")
        return {r["name"]: r for r in json.loads(body)}

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> DataPlane:
        problem = preflight()
        if problem:
            raise BinaryError(problem)
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="lanes-dataplane-"))
            self._owns_workdir = True
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        ensure_traefik()  # before anything starts: a cold build takes minutes
        try:
            crds.install_gateway_api(self.api_client)
            self._mark("crds", started)
            self._start_namespace()
            self._mark("namespace", started)
            self._gateways()
            self._node()
            self._start_traefik()
            for name in (EDGE_GATEWAY, MESH_GATEWAY):
                what = f"waiting for Gateway {GATEWAY_NAMESPACE}/{name} to be Programmed"
                self._wait(what, lambda n=name: self.gateway_programmed(n))
            self._mark("gateways programmed", started)
            self.edge_port = self.forward(GATEWAY_IP, EDGE_PORT)
        except BaseException:
            self.keep_workdir = True  # the error points at these logs
            self.stop()
            raise
        return self

    def _mark(self, what: str, started: float) -> None:
        self.timings[what] = round(time.monotonic() - started, 2)

    def _node(self) -> None:
        self._apply(
            f"/api/v1/nodes/{NODE_NAME}",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": NODE_NAME,
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/hostname": NODE_NAME},
                },
            },
        )

    def stop(self) -> None:
        for backend in list(self.backends.values()):
            backend.stop(delete_pod=False)
        _stop_process(self.traefik)
        for forwarder in self._forwarders.values():
            forwarder.close()
        self._forwarders.clear()
        _stop_process(self.holder)
        if self._host_dial is not None:
            self._host_dial.close()
            self._host_dial = None
        with contextlib.suppress(KubeError):
            self.kube.delete(f"/api/v1/nodes/{NODE_NAME}")
        if self._owns_workdir and not self.keep_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> DataPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- backends ---------------------------------------------------------------------------------------------

    def mesh_url(self) -> str:
        return f"http://{GATEWAY_IP}:{MESH_PORT}/"

    def backend(
        self,
        namespace: str,
        app: str,
        lane: str = "base",
        calls: Sequence[str] = (),
        port: int = 8080,
        labels: Mapping[str, str] | None = None,
        ready_timeout: float = 30,
    ) -> Backend:
        """A Pod of ``app`` in ``lane`` (labels ``app``, ``lanes.io/app``, ``lanes.io/lane``) with a sample app
        behind it that calls ``calls`` (app names) through the east-west gateway with ``Host: <app>.<namespace>``;
        returns once the pod is Ready."""
        pod = f"{app}-{lane}-{uuid.uuid4().hex[:6]}"
        pod_labels = {"app": app, "lanes.io/app": app, "lanes.io/lane": lane, **(labels or {})}
        self.kube.create(
            f"/api/v1/namespaces/{namespace}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "labels": pod_labels},
                "spec": {
                    "nodeName": NODE_NAME,
                    "readinessGates": [{"conditionType": SERVING_GATE}],
                    "containers": [
                        {
                            "name": "app",
                            "image": "localhost/lanes/sample-app:dev",
                            "ports": [{"name": "http", "containerPort": port}],
                        }
                    ],
                },
            },
        )
        ip = self._wait_pod_ip(namespace, pod)
        self.add_address(ip)
        log_path = self.logs_dir / f"{namespace}-{pod}.log"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PORT": str(port),
            "BIND": ip,
            "NAME": app,
            "LANE": lane,
            "HOSTNAME": pod,
            # Host `<app>.<namespace>`, a name a route on the shared gateway can claim for this namespace only
            "CALL": ",".join(f"{target}.{namespace}@{self.mesh_url()}" for target in calls),
        }
        log = log_path.open("ab")
        process = subprocess.Popen(
            self.nsenter([sys.executable, str(SAMPLE_APP)]),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        log.close()
        backend = Backend(self, namespace, pod, app, lane, ip, port, log_path, process)
        self.backends[(namespace, pod)] = backend
        deadline = time.monotonic() + ready_timeout
        while True:  # the readiness probe: /healthz answers 200
            if process.poll() is not None:
                raise DataPlaneError(f"sample app {pod} exited ({process.returncode}):\n{_tail(log_path)}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self._get(ip, port, "/healthz", {})[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise DataPlaneError(f"sample app {pod} did not answer /healthz on {ip}:{port}:\n{_tail(log_path)}")
            time.sleep(0.05)
        self.set_pod_ready(namespace, pod, True)
        self._wait_pod_ready(namespace, pod, True, ready_timeout)
        return backend

    def _wait_pod_ip(self, namespace: str, pod: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            obj = self.kube.get(f"/api/v1/namespaces/{namespace}/pods/{path_segment(pod)}")
            ip = obj.get("status", {}).get("podIP")
            if ip:
                return str(ip)
            if time.monotonic() > deadline:
                raise DataPlaneError(f"pod {namespace}/{pod} got no IP from kwok in {timeout:.0f}s")
            time.sleep(0.05)

    def _wait_pod_ready(self, namespace: str, pod: str, ready: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        want = "True" if ready else "False"
        while True:
            obj = self.kube.get(f"/api/v1/namespaces/{namespace}/pods/{path_segment(pod)}")
            conditions = {c.get("type"): c.get("status") for c in obj.get("status", {}).get("conditions", [])}
            if conditions.get("Ready") == want:
                return
            if time.monotonic() > deadline:
                raise DataPlaneError(f"pod {namespace}/{pod} not Ready={want} after {timeout:.0f}s: {conditions}")
            time.sleep(0.05)

    def set_pod_ready(self, namespace: str, pod: str, ready: bool) -> None:
        """Set the serving gate (and, going down, Ready itself: the kubelet would recompute it at once; kwok
        recomputes it only on the way up)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        value = "True" if ready else "False"
        conditions = [{"type": SERVING_GATE, "status": value, "lastTransitionTime": now}]
        if not ready:
            conditions.append({"type": "Ready", "status": "False", "reason": "ProbeFailed", "lastTransitionTime": now})
        self.kube.patch(
            f"/api/v1/namespaces/{namespace}/pods/{path_segment(pod)}/status",
            {"status": {"conditions": conditions}},
        )
        if not ready:
            self._wait_pod_ready(namespace, pod, False, 10)

    # -- requests ---------------------------------------------------------------------------------------------

    def _get(self, host: str, port: int, path: str, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        """GET ``host:port`` inside the namespace (through a forwarded host loopback port)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.forward(host, port), timeout=15)
        try:
            connection.request("GET", path, headers=dict(headers))
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def request(
        self,
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        host: str = "base.example.com",
        gateway: str = EDGE_GATEWAY,
    ) -> Response:
        """One GET through a Gateway (``edge`` by default) with ``Host: host`` and ``headers``."""
        port = EDGE_PORT if gateway == EDGE_GATEWAY else MESH_PORT
        status, got, body = self._get(GATEWAY_IP, port, path, {"Host": host, **(headers or {})})
        return Response(status, got, body)


@contextlib.contextmanager
def running(control_plane: ControlPlane, api_client: Any, **kwargs: Any) -> Iterator[DataPlane]:
    """``with running(plane, api_client) as dp: ...``"""
    plane = DataPlane(control_plane, api_client, **kwargs)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@dataclass
class Apps:
    """One test namespace on the data plane: its Services, backends and routes; ``close()`` stops its backends.

    The pods are kwok pods with sample-app processes behind them (see the module docstring): a stand-in for
    containers on the real node until that harness carries this traffic.
    """

    plane: DataPlane
    namespace: str
    created: list[Backend] = field(default_factory=list)

    def service(self, app: str, port: int = 8080, selector: Mapping[str, str] | None = None) -> None:
        """The app's own Service (selects every lane of it, as users' Services do)."""
        self.plane.kube.create(
            f"/api/v1/namespaces/{self.namespace}/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": app, "labels": {"app": app}},
                "spec": {
                    "selector": dict(selector or {"app": app}),
                    "ports": [{"name": "http", "port": port, "targetPort": "http"}],
                },
            },
        )

    def backend(self, app: str, lane: str = "base", calls: Sequence[str] = (), **kwargs: Any) -> Backend:
        made = self.plane.backend(self.namespace, app, lane, calls, **kwargs)
        self.created.append(made)
        return made

    def apply(self, obj: Mapping[str, Any]) -> Any:
        """Server-side apply one namespaced Gateway API object (HTTPRoute, ...) into this namespace."""
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        plural = kind.lower() + "s"
        name = path_segment(str(obj["metadata"]["name"]))
        body = {**obj, "metadata": {**obj["metadata"], "namespace": self.namespace}}
        return self.plane._apply(f"/apis/{api_version}/namespaces/{self.namespace}/{plural}/{name}", body)

    def request(self, path: str = "/", headers: Mapping[str, str] | None = None, **kwargs: Any) -> Response:
        return self.plane.request(path, headers, **kwargs)

    def close(self) -> None:
        for backend in self.created:
            backend.stop(delete_pod=False)  # the namespace goes, with its pods
        self.created.clear()


def eventually(check: Any, timeout: float = 10, interval: float = 0.1) -> Any:
    """``check()``'s first result that does not raise AssertionError (its value), polling until ``timeout``;
    re-raises the last AssertionError. For data-plane convergence: routes and endpoints apply asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(interval)
