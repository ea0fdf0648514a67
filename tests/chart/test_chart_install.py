"""charts/lanes installed with `helm install` into the real test API server, then the real admission path through
the chart's own objects, then `helm uninstall`.

The admission path: the API server resolves the chart's MutatingWebhookConfiguration -> the chart's Service.
Pods cannot run here, so the Service is replaced by an ExternalName Service of the same name pointing at
``localhost``, where the real ``lanes-webhook serve`` listens. kube-apiserver's default service resolver
(k8s.io/apiserver/pkg/util/proxy ResolveCluster, used unless --enable-aggregator-routing) turns an ExternalName
Service into ``https://<externalName>:<clientConfig.service.port>``: the port comes from the webhook
configuration, not from the Service's targetPort, so the chart is installed with ``service.port`` = the local
port. TLS is verified against ``<svc>.<ns>.svc`` (the server name the webhook client always sends) and the
chart's ``webhook.caBundle``.
"""

from __future__ import annotations

import base64
import json
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
import yaml
from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException

from devtools.controlplane import ControlPlane
from devtools.controlplane.cluster import free_port
from tests.chart.helm import CHART, Helm, HelmError
from tests.namespaces import make_namespace

RELEASE = "lanes-it"
FULLNAME = "lanes-it"  # the release name already contains "lanes"


@dataclass
class Installed:
    namespace: str
    port: int
    certs: Path
    processes: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]
    install_output: str
    manifest: list[dict[str, Any]]

    @property
    def ca_pem(self) -> bytes:
        return (self.certs / "ca.crt").read_bytes()

    def log(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{path.read_text(errors='replace')[-3000:]}" for name, path in self.logs.items()
        )

    def metrics(self) -> str:
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        context.check_hostname = False  # the certificate is for the Service name, we dial 127.0.0.1
        with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/metrics", context=context, timeout=5) as r:
            return str(r.read().decode())

    def mutate_requests(self) -> float:
        """lanes_admission_requests_total summed over the /mutate path."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith("lanes_admission_requests_total{") and 'path="/mutate"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop_processes(self) -> None:
        """SIGTERM (twice for the server: the second one skips its shutdown delay); the controller releases its
        Lease on the way out."""
        for name, process in self.processes.items():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                if name == "webhook":
                    time.sleep(0.3)
                    process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _until(what: str, check: Any, installed_log: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout:.0f}s\n{installed_log()}")


def _service_account_kubeconfig(control_plane: ControlPlane, k8s: client.ApiClient, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount (TokenRequest, as the kubelet would)."""
    token = client.CoreV1Api(k8s).create_namespaced_service_account_token(
        FULLNAME, namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=3600))
    ).status.token
    path.write_text(json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "envtest", "cluster": {"server": control_plane.url,
                                                     "certificate-authority": str(control_plane.ca_file)}}],
        "users": [{"name": "lanes", "user": {"token": token}}],
        "contexts": [{"name": "lanes", "context": {"cluster": "envtest", "user": "lanes", "namespace": namespace}}],
        "current-context": "lanes",
    }))
    return path


def _local_args(args: list[str], replacements: dict[str, str]) -> list[str]:
    """The container's args with in-pod paths and the in-cluster config swapped for local ones."""
    out = []
    for arg in args:
        for old, new in replacements.items():
            arg = arg.replace(old, new)
        out.append(arg)
    return out


def _replace_service_with_external_name(k8s: client.ApiClient, namespace: str, port: int) -> None:
    core = client.CoreV1Api(k8s)
    chart_service = core.read_namespaced_service(FULLNAME, namespace)
    https = next(p for p in chart_service.spec.ports if p.name == "https")
    assert https.port == port  # the chart put service.port into the Service and the webhook configuration
    core.delete_namespaced_service(FULLNAME, namespace)
    core.create_namespaced_service(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": FULLNAME, "labels": chart_service.metadata.labels,
                         "annotations": chart_service.metadata.annotations},
            "spec": {
                "type": "ExternalName",
                "externalName": "localhost",
                "ports": [{"name": "https", "port": port, "targetPort": port, "protocol": "TCP"}],
            },
        },
    )


@pytest.fixture(scope="module")
def installed(
    helm: Helm, control_plane: ControlPlane, k8s: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    """The chart with default certificates (the controller's), its two processes run from the args the
    Deployment renders, authenticated as the chart's ServiceAccount."""
    workdir = tmp_path_factory.mktemp("chart-install")
    namespace = make_namespace(k8s)
    port = free_port()
    values = {
        "webhook": {"failurePolicy": "Fail"},
        "validation": {"enabled": True},
        "service": {"port": port},
        "networkPolicy": {"enabled": True},
    }
    (workdir / "values.yaml").write_text(yaml.safe_dump(values))
    output = helm.run("install", RELEASE, str(CHART), "--namespace", namespace, "-f", str(workdir / "values.yaml"),
                      kubeconfig=control_plane.kubeconfig)
    manifest = [d for d in yaml.safe_load_all(helm.run("get", "manifest", RELEASE, "--namespace", namespace,
                                                        kubeconfig=control_plane.kubeconfig)) if d]
    pod_spec = next(d for d in manifest if d["kind"] == "Deployment")["spec"]["template"]["spec"]

    kubeconfig = _service_account_kubeconfig(control_plane, k8s, namespace, workdir / "sa.kubeconfig")
    # the defaults the chart wrote into its ConfigMap, read back from the API server
    configmap = client.CoreV1Api(k8s).read_namespaced_config_map(f"{FULLNAME}-defaults", namespace)
    (workdir / "defaults.yaml").write_text(configmap.data["defaults.yaml"])
    certs = workdir / "certs"
    replacements = {
        "--in-cluster": f"--kubeconfig={kubeconfig}",
        "$(POD_NAMESPACE)": namespace,
        "$(POD_NAME)": f"{FULLNAME}-test-0",
        "/etc/lanes/config/defaults.yaml": str(workdir / "defaults.yaml"),
        "/var/run/lanes/certs": str(certs),
        "--port=8443": f"--port={port}",
        "--metrics-port=9090": f"--metrics-port={free_port()}",
    }
    (controller,) = pod_spec["initContainers"]
    (webhook,) = pod_spec["containers"]
    logs = {"controller": workdir / "controller.log", "webhook": workdir / "webhook.log"}
    commands = {
        "controller": [sys.executable, *controller["command"][1:], *_local_args(controller["args"], replacements)],
        "webhook": [str(Path(sys.executable).parent / "lanes-webhook"), *_local_args(webhook["args"], replacements),
                    "--host=127.0.0.1"],
    }
    installed = Installed(namespace, port, certs, {}, logs, output, manifest)
    try:
        # the native sidecar first: the webhook container starts once the certificate files exist
        with logs["controller"].open("wb") as log:
            installed.processes["controller"] = subprocess.Popen(
                commands["controller"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _until("controller wrote the serving certificate", lambda: (certs / "tls.crt").stat().st_size > 0,
               installed.log)
        with logs["webhook"].open("wb") as log:
            installed.processes["webhook"] = subprocess.Popen(
                commands["webhook"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def ready() -> bool:
            context = ssl.create_default_context(cadata=installed.ca_pem.decode())
            context.check_hostname = False
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=context, timeout=2) as r:
                return bool(r.status == 200)

        _until("webhook ready (owner cache synced as the ServiceAccount)", ready, installed.log)
        _replace_service_with_external_name(k8s, namespace, port)
        yield installed
    finally:
        installed.stop_processes()
        # a failed test must not leave a webhook registered for the rest of the session
        try:
            helm.run("uninstall", RELEASE, "--namespace", namespace, kubeconfig=control_plane.kubeconfig)
        except HelmError as exc:
            if "not found" not in exc.stderr:
                raise
        client.CoreV1Api(k8s).delete_namespace(namespace)


def _pod(name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}, "annotations": annotations or {}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/app:1",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                }
            ]
        },
    }


def _create(k8s: client.ApiClient, namespace: str, pod: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    kwargs = {"dry_run": "All"} if dry_run else {}
    response = client.CoreV1Api(k8s).create_namespaced_pod(namespace, pod, _preload_content=False, **kwargs)
    result: dict[str, Any] = json.loads(response.data)
    return result


def _injected(pod: dict[str, Any]) -> bool:
    return "lanes.io/status" in (pod["metadata"].get("annotations") or {})


@pytest.fixture(scope="module")
def enabled(installed: Installed, k8s: client.ApiClient) -> Iterator[str]:
    """An enabled namespace, once the API server routes admission through the chart's objects (the controller
    has patched caBundle, the API server's informers have seen the configuration and the ExternalName Service).

    The API server learns about new webhook configurations and Services through informers; dry-run creations
    (no side effects, the same answer) are retried until the webhook answers, for at most 30 s.
    """
    name = make_namespace(k8s, labels={"lanes": "enabled"})
    deadline = time.monotonic() + 30
    last: str = ""
    while True:
        try:
            if _injected(_create(k8s, name, _pod("probe"), dry_run=True)):
                break
            last = "admitted without injection"
        except ApiException as exc:
            last = f"{exc.status}: {exc.body}"
        if time.monotonic() > deadline:
            raise AssertionError(f"the chart's webhook never answered within 30s; last: {last}\n"
                                 f"webhook log:\n{installed.log()[-3000:]}")
        time.sleep(0.3)
    yield name
    client.CoreV1Api(k8s).delete_namespace(name)


# --- installed objects -----------------------------------------------------------------------------------------


def test_install_creates_valid_objects_and_prints_next_steps(installed: Installed, k8s: client.ApiClient) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in installed.manifest}
    assert kinds == {
        ("ServiceAccount", FULLNAME),
        ("ConfigMap", f"{FULLNAME}-defaults"),
        ("ClusterRole", f"{FULLNAME}-{installed.namespace}"),
        ("ClusterRoleBinding", f"{FULLNAME}-{installed.namespace}"),
        ("Role", FULLNAME),
        ("RoleBinding", FULLNAME),
        ("Service", FULLNAME),
        ("Deployment", FULLNAME),
        ("PodDisruptionBudget", FULLNAME),
        ("NetworkPolicy", FULLNAME),
        ("MutatingWebhookConfiguration", FULLNAME),
        ("ValidatingWebhookConfiguration", FULLNAME),
        ("Secret", f"{FULLNAME}-tls"),
        ("Lease", f"{FULLNAME}-controller"),
    }
    # what the API server stored (defaulted and validated), not what helm sent
    apps = client.AppsV1Api(k8s)
    deployment = apps.read_namespaced_deployment(FULLNAME, installed.namespace)
    assert deployment.spec.replicas == 2
    assert deployment.spec.strategy.rolling_update.max_unavailable == 0
    pod_spec = deployment.spec.template.spec
    webhook = next(c for c in pod_spec.containers if c.name == "webhook")
    assert webhook.lifecycle.pre_stop.sleep.seconds == 5
    assert webhook.security_context.read_only_root_filesystem is True
    assert webhook.readiness_probe.http_get.scheme == "HTTPS"
    pdb = client.PolicyV1Api(k8s).read_namespaced_pod_disruption_budget(FULLNAME, installed.namespace)
    assert pdb.spec.min_available == 1
    mwc = client.AdmissionregistrationV1Api(k8s).read_mutating_webhook_configuration(FULLNAME)
    (hook,) = mwc.webhooks
    assert (hook.failure_policy, hook.timeout_seconds, hook.side_effects) == ("Fail", 5, "None")
    assert hook.client_config.service.port == installed.port
    # the controller issued the certificate, filled the chart's Secret and patched caBundle of both configurations
    ca = installed.ca_pem.strip()
    assert ca and ca in base64.b64decode(hook.client_config.ca_bundle)
    vwc = client.AdmissionregistrationV1Api(k8s).read_validating_webhook_configuration(FULLNAME)
    assert vwc.webhooks[0].client_config.service.path == "/validate"
    assert ca in base64.b64decode(vwc.webhooks[0].client_config.ca_bundle)
    secret = client.CoreV1Api(k8s).read_namespaced_secret(f"{FULLNAME}-tls", installed.namespace)
    assert base64.b64decode(secret.data["tls.crt"]) == (installed.certs / "tls.crt").read_bytes()
    assert secret.metadata.labels["app.kubernetes.io/instance"] == RELEASE  # still Helm's object
    lease = client.CoordinationV1Api(k8s).read_namespaced_lease(f"{FULLNAME}-controller", installed.namespace)
    assert lease.spec.holder_identity == f"{FULLNAME}-test-0"
    # NOTES.txt: the next steps
    assert "kubectl label namespace NAMESPACE lanes=enabled" in installed.install_output
    assert "lanes doctor" in installed.install_output
    assert "failurePolicy is Fail" in installed.install_output


def test_service_account_can_do_exactly_what_the_controller_needs(installed: Installed, k8s: client.ApiClient) -> None:
    """SubjectAccessReviews against the real RBAC authorizer, as the chart's ServiceAccount."""
    user = f"system:serviceaccount:{installed.namespace}:{FULLNAME}"
    auth = client.AuthorizationV1Api(k8s)

    def allowed(verb: str, resource: str, *, group: str = "", namespace: str = "other", name: str = "",
                subresource: str = "") -> bool:
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=["system:serviceaccounts", f"system:serviceaccounts:{installed.namespace}"],
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, resource=resource, group=group, namespace=namespace or None, name=name or None,
                    subresource=subresource or None,
                ),
            )
        )
        return bool(auth.create_subject_access_review(review).status.allowed)

    own = installed.namespace
    admission = "admissionregistration.k8s.io"
    assert allowed("watch", "pods") and allowed("list", "namespaces", namespace="")
    assert allowed("watch", "replicasets", group="apps") and allowed("list", "cronjobs", group="batch")
    assert allowed("patch", "pods", subresource="status")
    assert allowed("create", "events")
    assert allowed("patch", "mutatingwebhookconfigurations", group=admission, namespace="", name=FULLNAME)
    assert allowed("watch", "validatingwebhookconfigurations", group=admission, namespace="", name=FULLNAME)
    assert allowed("update", "leases", group="coordination.k8s.io", namespace=own, name=f"{FULLNAME}-controller")
    assert allowed("watch", "secrets", namespace=own, name=f"{FULLNAME}-tls")
    assert allowed("update", "secrets", namespace=own, name=f"{FULLNAME}-tls")
    # and nothing more
    assert not allowed("create", "pods", subresource="eviction")  # controller.repair.evict is off by default
    assert not allowed("update", "leases", group="coordination.k8s.io", namespace=own, name="someone-else")
    assert not allowed("get", "secrets", namespace=own, name="anything")
    assert not allowed("list", "secrets", namespace=own)  # only with a field selector on its name
    assert not allowed("get", "secrets", namespace="other", name=f"{FULLNAME}-tls")
    assert not allowed("delete", "secrets", namespace=own, name=f"{FULLNAME}-tls")
    assert not allowed("delete", "pods")
    assert not allowed("update", "pods")
    assert not allowed("patch", "events")
    assert not allowed("patch", "deployments", group="apps")
    assert not allowed("patch", "mutatingwebhookconfigurations", group=admission, namespace="", name="another")
    assert not allowed("create", "mutatingwebhookconfigurations", group=admission, namespace="")


# --- admission through the chart's objects ------------------------------------------------------------------


def test_pod_in_enabled_namespace_is_mutated_through_the_chart_webhook(
    installed: Installed, enabled: str, k8s: client.ApiClient
) -> None:
    before = installed.mutate_requests()
    created = _create(k8s, enabled, _pod("web", annotations={"lanes.io/lane": "gray"}))
    meta, spec = created["metadata"], created["spec"]
    assert meta["labels"]["lanes.io/lane"] == "gray"
    assert meta["labels"]["lanes.io/app"] == "web"
    assert json.loads(meta["annotations"]["lanes.io/status"])
    agent = next(c for c in spec["initContainers"] if c["name"] == "lanes-agent")
    assert agent["restartPolicy"] == "Always"
    # the helper image and pull policy come from the chart's defaults ConfigMap
    assert agent["image"] == "ghcr.io/lanes-io/lanes-helper:0.1.0"
    assert {"conditionType": "lanes.io/registered"} in spec["readinessGates"]
    app_env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert app_env["LANES_LANE"] == "gray"
    assert spec["containers"][0]["lifecycle"]["preStop"]["httpGet"]["path"] == "/prestop"
    # it really went through this server (twice when reinvoked: the ServiceAccount admission plugin mounts the
    # API token into the injected sidecar after the first call, and reinvocationPolicy is IfNeeded)
    assert installed.mutate_requests() in (before + 1, before + 2)


def test_selectors_and_match_conditions_keep_pods_away_from_the_webhook(
    installed: Installed, enabled: str, k8s: client.ApiClient
) -> None:
    before = installed.mutate_requests()
    opted_out = _create(k8s, enabled, _pod("opted-out", labels={"app": "x", "lanes.io/inject": "false"}))
    host = _pod("host")
    host["spec"]["hostNetwork"] = True
    host_network = _create(k8s, enabled, host)
    plain_namespace = make_namespace(k8s)
    try:
        plain = _create(k8s, plain_namespace, _pod("plain"))
    finally:
        client.CoreV1Api(k8s).delete_namespace(plain_namespace)
    # the webhook's own namespace, even when labeled enabled (failurePolicy Fail: a call would be visible)
    client.CoreV1Api(k8s).patch_namespace(installed.namespace, {"metadata": {"labels": {"lanes": "enabled"}}})
    own = _create(k8s, installed.namespace, _pod("own"), dry_run=True)
    for pod in (opted_out, host_network, plain, own):
        assert not _injected(pod), pod["metadata"]["name"]
    assert installed.mutate_requests() == before  # none of them was even sent to the webhook


def test_validating_webhook_is_reached_through_the_chart(
    installed: Installed, enabled: str, k8s: client.ApiClient
) -> None:
    labels = {"app": "checkout"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "checkout", "annotations": {"lanes.io/drain": "twenty seconds"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": _pod("t")["spec"]},
        },
    }
    apps = client.AppsV1Api(k8s)
    deadline = time.monotonic() + 30
    while True:
        try:
            apps.create_namespaced_deployment(enabled, deployment, dry_run="All")
        except ApiException as exc:
            if exc.status == 400 and "lanes.io/drain" in exc.body:
                break  # the validating webhook rejected the bad value and named the annotation
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"invalid lanes.io/drain was admitted; webhook log:\n{installed.log()[-2000:]}")
        time.sleep(0.3)
    deployment["metadata"]["annotations"]["lanes.io/drain"] = "20s"
    apps.create_namespaced_deployment(enabled, deployment, dry_run="All")


# --- wrong values never reach the cluster ------------------------------------------------------------------------


def test_install_with_a_wrong_type_fails_and_creates_nothing(
    helm: Helm, control_plane: ControlPlane, k8s: client.ApiClient, namespace: str
) -> None:
    with pytest.raises(HelmError) as caught:
        helm.run("install", "bad", str(CHART), "--namespace", namespace, "--set-string", "replicaCount=two",
                 kubeconfig=control_plane.kubeconfig)
    assert "/replicaCount" in caught.value.stderr and "want integer" in caught.value.stderr
    core = client.CoreV1Api(k8s)
    assert core.list_namespaced_config_map(namespace, label_selector="app.kubernetes.io/instance=bad").items == []
    assert client.CoreV1Api(k8s).list_namespaced_secret(namespace, label_selector="owner=helm").items == []


# --- uninstall ---------------------------------------------------------------------------------------------------


def test_uninstall_leaves_nothing_behind(
    installed: Installed, helm: Helm, control_plane: ControlPlane, k8s: client.ApiClient
) -> None:
    """Runs last in this module (pytest keeps file order): every object the chart created is gone."""
    installed.stop_processes()  # as the pods would be: otherwise the controller re-creates its Secret and Lease
    dyn = dynamic.DynamicClient(k8s)
    created = [(d["apiVersion"], d["kind"], d["metadata"]["name"], d["metadata"].get("namespace"))
               for d in installed.manifest]
    cluster_scoped = {kind for _, kind, _, ns in created if ns is None}
    assert cluster_scoped == {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                              "ValidatingWebhookConfiguration"}
    for api_version, kind, name, ns in created:  # all there before
        dyn.resources.get(api_version=api_version, kind=kind).get(name=name, namespace=ns)

    helm.run("uninstall", RELEASE, "--namespace", installed.namespace, kubeconfig=control_plane.kubeconfig)

    for api_version, kind, name, ns in created:
        with pytest.raises(ApiException) as caught:
            dyn.resources.get(api_version=api_version, kind=kind).get(name=name, namespace=ns)
        assert caught.value.status == 404, f"{kind}/{name} survived helm uninstall"
    # nothing else carries the release's label anywhere, cluster-scoped kinds included
    selector = f"app.kubernetes.io/instance={RELEASE}"
    for api_version, kind in {(a, k) for a, k, _, _ in created} | {("apps/v1", "ReplicaSet"), ("v1", "Pod")}:
        resource = dyn.resources.get(api_version=api_version, kind=kind)
        deadline = time.monotonic() + 30  # ReplicaSets and pods go through the garbage collector
        while True:
            left = [o.metadata.name for o in resource.get(label_selector=selector).items]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert left == [], f"{kind} left behind: {left}"
    # and helm's own release record
    secrets = client.CoreV1Api(k8s).list_namespaced_secret(installed.namespace, label_selector=f"name={RELEASE}")
    assert secrets.items == []
