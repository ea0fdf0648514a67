"""Test support for the controller tests: fake nodes that honour readiness gates, restricted credentials, the
controller + admission server + registration of one test, waiting helpers.

Running the controller and the admission server next to the control plane is developer tooling shared with
``make demo`` (devtools.local_controller, devtools.local_webhook); what is here is how these tests use them.

Fake nodes. kwok's own pod stages do not model readiness gates (``pod/general``, which the session harness runs,
sets every readiness-gate condition True when the pod is created; ``pod/fast`` reports Ready regardless), so
these tests run a second kwok process with the harness's kwok stages: ContainersReady as soon as the pod is placed,
Ready only when every readiness gate's condition is True, exactly the kubelet's rule. It manages only nodes
annotated ``lanes.test/kwok=controller``; those nodes carry a NoSchedule taint so no other test's pods land
there, and the pods here are pinned to them (nodeName, or nodeSelector + toleration in templates).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import config as kube_config

from devtools.controlplane import ControlPlane
from devtools.controlplane.binaries import ensure_binaries
from devtools.controlplane.cluster import KWOK_STAGES, Component, free_port
from devtools.local_controller import LocalController, running_controller
from devtools.local_webhook import LocalWebhook, local_registration
from webhook.contract import names
from webhook.controller import Controller, ControllerMetrics, ControllerSettings
from webhook.controller.certs import pki
from webhook.controller.rbac import cluster_rules, namespace_rules
from webhook.kube.client import Kube, KubeError

STAGES = KWOK_STAGES  # the harness's gate-honouring stages (devtools/controlplane/kwok/stages.yaml)
KWOK_ANNOTATION = "lanes.test/kwok"
KWOK_VALUE = "controller"
NODE_LABEL = "lanes.test/node"
READY_DELAY_ANNOTATION = "lanes.test/ready-delay"  # read by the kwok stages

T = TypeVar("T")


# --- waiting -------------------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (KubeError, OSError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")
        time.sleep(interval)


# --- pods ----------------------------------------------------------------------------------------------------


def conditions(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}


def lapsing_leadership() -> tuple[Callable[[], float], list[float]]:
    """A loop's ``write_timeout`` whose first answer is NotLeader (a renewal that lands just after the renew
    deadline, on a loaded node; the term goes on) and every later one 10 s; and the times it was asked."""
    from webhook.controller.leader import NotLeader

    asked: list[float] = []

    def write_timeout() -> float:
        asked.append(time.monotonic())
        if len(asked) == 1:
            raise NotLeader("renewal late")
        return 10.0

    return write_timeout, asked


def condition_status(pod: dict[str, Any], kind: str) -> str | None:
    return conditions(pod).get(kind, {}).get("status")


def parse_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def gated_pod(
    name: str,
    node: str,
    *,
    register_delay: str | None = None,
    status_delay: float | None = None,
    ready_delay: str | None = None,
    gate: bool = True,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pod as the webhook would leave it (readiness gate; ``lanes.io/status`` when ``status_delay`` is set)."""
    annotations: dict[str, str] = {}
    if register_delay is not None:
        annotations[names.ANN_REGISTER_DELAY] = register_delay
    if status_delay is not None:
        annotations[names.ANN_STATUS] = status_annotation(status_delay)
    if ready_delay is not None:
        annotations[READY_DELAY_ANNOTATION] = ready_delay
    spec: dict[str, Any] = {
        "nodeName": node,
        "containers": [{"name": "app", "image": "registry.example/app:1"}],
        "terminationGracePeriodSeconds": 0,
    }
    if gate:
        spec["readinessGates"] = [{"conditionType": names.CONDITION_REGISTERED}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations},
        "spec": spec,
    }


def status_annotation(register_delay: float) -> str:
    """A ``lanes.io/status`` value as the webhook writes it, via the core's own code."""
    from webhook.contract.settings import LanesConfig
    from webhook.injection.mutation import status_of

    return status_of(LanesConfig(lane="base", app="app", register_delay=register_delay), {"containers": {}})


def pinned_template(node: str, labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    """A pod template for workloads: scheduled onto the gate-honouring fake node only."""
    return {
        "metadata": {"labels": labels, "annotations": annotations},
        "spec": {
            "nodeSelector": {NODE_LABEL: node},
            "tolerations": [{"key": KWOK_ANNOTATION, "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "app", "image": "registry.example/app:1"}],
            "readinessGates": [{"conditionType": names.CONDITION_REGISTERED}],
            "terminationGracePeriodSeconds": 0,
        },
    }


# --- the gate-honouring fake node ------------------------------------------------------------------------------


@dataclass
class GateNode:
    """A second kwok with the harness's kwok stages and one fake node it manages."""

    control_plane: ControlPlane
    name: str = field(default_factory=lambda: f"lanes-kwok-{uuid.uuid4().hex[:6]}")
    component: Component | None = None

    def start(self) -> GateNode:
        bin_dir = ensure_binaries(("kwok",))
        assert self.control_plane.workdir is not None
        self.component = Component(
            "kwok-controller-tests",
            [
                str(bin_dir / "kwok"),
                f"--kubeconfig={self.control_plane.kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}={KWOK_VALUE}",
                "--node-ip=10.245.0.1",
                "--cidr=10.245.0.0/16",
                f"--server-address=127.0.0.1:{free_port()}",
                f"--config={STAGES}",
            ],
            self.control_plane.logs_dir / "kwok-controller-tests.log",
        )
        self.component.start()
        kube = Kube(kube_config.new_client_from_config(config_file=str(self.control_plane.kubeconfig)))
        kube.create(
            "/api/v1/nodes",
            {
                "metadata": {
                    "name": self.name,
                    "annotations": {KWOK_ANNOTATION: KWOK_VALUE},
                    "labels": {NODE_LABEL: self.name, "type": "kwok"},
                },
                "spec": {"taints": [{"key": KWOK_ANNOTATION, "value": KWOK_VALUE, "effect": "NoSchedule"}]},
            },
        )

        def ready() -> bool:
            if not self.component or not self.component.alive():
                raise AssertionError(f"kwok exited: {self.component.failure('exited') if self.component else ''}")
            node = kube.get(f"/api/v1/nodes/{self.name}")
            return condition_status(node, "Ready") == "True" and not any(
                t.get("key", "").startswith("node.kubernetes.io/") for t in node["spec"].get("taints") or []
            )

        wait_for(ready, 60, f"fake node {self.name} Ready and untainted")
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            kube = Kube(kube_config.new_client_from_config(config_file=str(self.control_plane.kubeconfig)))
            kube.delete(f"/api/v1/nodes/{self.name}")
        if self.component is not None:
            self.component.stop()


# --- credentials bound to exactly the documented RBAC ---------------------------------------------------------


def restricted_kubeconfig(control_plane: ControlPlane, user: str, directory: Path) -> Path:
    """A kubeconfig for ``user`` (a client certificate from the control plane's CA): no groups, no privileges
    beyond what is bound to it."""
    ca = pki.KeyPair(control_plane.path("ca.crt").read_bytes(), control_plane.path("ca.key").read_bytes())
    pair = pki.issue(ca, user, dt.timedelta(days=1), server=False, client=True)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "user.crt", directory / "user.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    return control_plane.write_kubeconfig(directory / "kubeconfig", user, cert, key)


def grant(kube: Kube, user: str, settings: ControllerSettings) -> list[str]:
    """Bind ``user`` to the controller's documented rules (webhook.controller.rbac), and nothing else; returns
    the paths of the objects created (for cleanup)."""
    role = f"lanes-controller-{uuid.uuid4().hex[:8]}"
    subject = [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    ns = settings.namespace
    objects = [
        (f"{rbac}/clusterroles", {"metadata": {"name": role}, "rules": cluster_rules(settings)}),
        (f"{rbac}/clusterrolebindings", _binding(role, "ClusterRole", subject)),
        (f"{rbac}/namespaces/{ns}/roles", {"metadata": {"name": role}, "rules": namespace_rules(settings)}),
        (f"{rbac}/namespaces/{ns}/rolebindings", _binding(role, "Role", subject)),
    ]
    created = []
    for collection, body in objects:
        kube.create(collection, body)
        created.append(f"{collection}/{role}")
    return created


def _binding(role: str, kind: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": subjects,
    }


# --- controllers ----------------------------------------------------------------------------------------------


def metric(controller_metrics: ControllerMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = controller_metrics.registry.get_sample_value(name, labels or {})
    return float(value or 0.0)


#: ``python -m webhook.controller`` as its own process (what the chart runs).
ControllerProcess = LocalController


# --- the real admission server --------------------------------------------------------------------------------


@dataclass
class AdmissionServer(LocalWebhook):
    """``lanes-webhook serve`` on the certificate files the controller writes: checked every 0.2 s so a rotation
    shows within these tests' seconds-long lifetimes; no owner cache (the pods here have no owners to resolve).
    Ready once it listens, even on a certificate made invalid on purpose."""

    args: list[str] = field(default_factory=lambda: ["--no-owner-cache", "--cert-check-interval=0.2"])


class Stopwatch(threading.Thread):
    """Runs ``action`` repeatedly on a thread until stopped; keeps every result and error."""

    def __init__(self, action: Callable[[int], Any], pause: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.action = action
        self.pause = pause
        self.results: list[Any] = []
        self.errors: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        index = 0
        while not self._stop_event.is_set():
            try:
                self.results.append(self.action(index))
            except Exception as exc:
                self.errors.append(f"#{index}: {exc}")
            index += 1
            self._stop_event.wait(self.pause)

    def finish(self) -> None:
        self._stop_event.set()
        self.join(30)


# --- a webhook whose certificates the controller manages -------------------------------------------------------


@dataclass
class ManagedWebhook:
    controller: Controller
    server: AdmissionServer
    settings: ControllerSettings

    def server_metrics(self, ca_pem: bytes) -> str:
        import ssl

        context = ssl.create_default_context(cadata=ca_pem.decode())
        with urllib.request.urlopen(self.server.url + "/metrics", context=context, timeout=5) as response:
            return response.read().decode()


def admission_requests(metrics_text: str, path: str = "/mutate") -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("lanes_admission_requests_total{") and f'path="{path}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@contextlib.contextmanager
def managed_webhook(env: Any, failure_policy: str = "Fail", **overrides: Any) -> Iterator[ManagedWebhook]:
    """The controller (managing certificates) + the real admission server + a webhook registration for the
    environment's enabled namespaces, created without caBundle: the controller fills it in."""
    cert_dir = env.workdir / "certs"
    server = AdmissionServer(cert_dir, env.workdir / "webhook.log")
    settings = env.settings(
        manage_certs=True,
        cert_dir=cert_dir,
        extra_dns_names=("localhost",),
        extra_ip_addresses=("127.0.0.1",),
        **overrides,
    )
    config_path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{settings.webhook_config}"
    with contextlib.suppress(KubeError):
        env.kube.delete(config_path)
    registration = local_registration(
        settings.webhook_config,
        server.url,
        own_namespace=settings.namespace,
        ca_pem=None,  # published by the controller
        failure_policy=failure_policy,
        namespace_labels=env.labels,
    )
    env.kube.create("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", registration)
    env.created.append(config_path)
    with running_controller(settings, env.kubeconfig) as controller:
        assert controller.wait_for_certificates(30), "no certificate files"
        server.start()
        try:
            yield ManagedWebhook(controller, server, settings)
        finally:
            server.stop()


def restart_apiserver(control_plane: ControlPlane) -> None:
    """Stop and start kube-apiserver on the same port (etcd keeps the data). Call
    :func:`wait_for_controller_manager` afterwards, before the test ends."""
    control_plane.stop_apiserver()
    control_plane.start_apiserver()


def wait_for_controller_manager(control_plane: ControlPlane, timeout: float = 150) -> None:
    """A fresh namespace gets its ``default`` ServiceAccount: kube-controller-manager's watches are back.

    Its reflectors reconnect with client-go's backoff (800 ms doubling to 30 s, jitter 1.0: a single wait can be
    up to 60 s), and several restarts in a row leave it high, so one retry may not be enough: the timeout allows
    two. Without this wait, the tests after a restart would pay for it (their namespaces get no ServiceAccount in
    time). A harness wait, not an assertion about Lanes: it passes as soon as the ServiceAccount exists."""
    kube = Kube(kube_config.new_client_from_config(config_file=str(control_plane.kubeconfig)))
    name = f"probe-{uuid.uuid4().hex[:8]}"
    kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    try:
        wait_for(
            lambda: kube.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
            timeout,
            "kube-controller-manager to recover after the API server restart",
            interval=0.5,
        )
    finally:
        with contextlib.suppress(KubeError):
            kube.delete(f"/api/v1/namespaces/{name}")
