"""charts/lanes rendered by the pinned helm: lint, what the objects say with default and other values, the
schema's rejections, and agreement with the code that consumes them (server flags, ClusterDefaults)."""

from __future__ import annotations

import base64
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.controlplane.binaries import REPO_ROOT
from tests.chart.helm import CHART, Helm, HelmError, by_kind, container, one
from webhook.admission.registration import mutating_webhook_configuration
from webhook.cli.controller import build_parser as controller_parser
from webhook.cli.controller import settings_from_args
from webhook.cli.server import build_parser
from webhook.contract.defaults import ClusterDefaults, load_defaults
from webhook.controller.rbac import routing_rules
from webhook.controller.settings import ControllerSettings

NS = "lanes-system"

DEFAULT_KINDS = {
    "ServiceAccount",
    "ConfigMap",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "MutatingWebhookConfiguration",
    "Secret",  # created empty, filled and rotated by the controller
    "Lease",  # created empty, taken over by the controller's leader election
}


@pytest.fixture(scope="module")
def default(helm: Helm) -> list[dict[str, Any]]:
    return helm.template()


# --- lint ------------------------------------------------------------------------------------------------------


def test_lint_strict_with_default_and_every_optional_feature(helm: Helm) -> None:
    out = helm.run("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    out = helm.run(
        "lint",
        "--strict",
        str(CHART),
        "--set",
        "certManager.enabled=true,validation.enabled=true,serviceMonitor.enabled=true,"
        "networkPolicy.enabled=true,priorityClassName=system-cluster-critical,controller.repair.evict=true",
    )
    assert "0 chart(s) failed" in out


# --- default values --------------------------------------------------------------------------------------------


def test_default_render_has_exactly_the_core_objects(default: list[dict[str, Any]]) -> None:
    assert {o["kind"] for o in default} == DEFAULT_KINDS
    assert len(default) == len(DEFAULT_KINDS)
    for obj in default:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "lanes"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        cluster_scoped = obj["kind"] in {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}
        assert ("namespace" in obj["metadata"]) != cluster_scoped, obj["kind"]


def test_deployment_is_highly_available_and_restricted(default: list[dict[str, Any]]) -> None:
    deployment = one(default, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"]["lanes.io/inject"] == "false"
    assert "priorityClassName" not in pod
    preferred = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert preferred[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert [c["name"] for c in pod["containers"]] == ["webhook"]
    # the controller is a native sidecar: started (certificate written) before the webhook container
    assert [c["name"] for c in pod["initContainers"]] == ["controller"]
    assert pod["initContainers"][0]["restartPolicy"] == "Always"
    for c in pod["containers"] + pod["initContainers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
        assert c["image"] == "ghcr.io/lanes-io/lanes-webhook:0.1.0"
    pdb = one(default, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_webhook_container_probes_and_graceful_shutdown(default: list[dict[str, Any]]) -> None:
    deployment = one(default, "Deployment")
    web = container(deployment, "webhook")
    assert web["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = web[probe]["httpGet"]
        assert (get["path"], get["port"], get["scheme"]) == (path, "https", "HTTPS"), probe
    assert web["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    args = build_parser().parse_args(web["args"])
    assert args.command == "serve"
    assert args.port == 8443 and args.in_cluster
    assert args.shutdown_delay == 5 and args.shutdown_timeout == 10
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= 5 + args.shutdown_delay + args.shutdown_timeout
    # the flags point at the mounted files
    mounts = {m["name"]: m["mountPath"] for m in web["volumeMounts"]}
    assert Path(args.cert).parent == Path(args.key).parent == Path(mounts["certs"])
    assert Path(args.defaults).parent == Path(mounts["defaults"])
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    # the controller writes the serving pair into an in-memory volume; the CA key never reaches this container
    assert volumes["certs"]["emptyDir"]["medium"] == "Memory"
    assert volumes["defaults"]["configMap"]["name"] == one(default, "ConfigMap")["metadata"]["name"]


def _controller_settings(objects: list[dict[str, Any]], namespace: str = NS) -> ControllerSettings:
    """The settings `python -m webhook.controller` builds from the args the chart renders (the defaults file it
    names is the chart's ConfigMap)."""
    deployment = one(objects, "Deployment")
    ctrl = next(c for c in deployment["spec"]["template"]["spec"]["initContainers"] if c["name"] == "controller")
    assert ctrl["command"] == ["python", "-m", "webhook.controller"]
    with tempfile.TemporaryDirectory() as tmp:
        defaults = Path(tmp) / "defaults.yaml"
        defaults.write_text(one(objects, "ConfigMap")["data"]["defaults.yaml"])
        args = [
            a.replace("$(POD_NAMESPACE)", namespace).replace("$(POD_NAME)", "lanes-abc").replace(
                "/etc/lanes/config/defaults.yaml", str(defaults))
            for a in ctrl["args"]
        ]
        assert f"--defaults={defaults}" in args
        return settings_from_args(controller_parser().parse_args(args))


def test_controller_flags_name_the_charts_objects(default: list[dict[str, Any]]) -> None:
    deployment = one(default, "Deployment")
    settings = _controller_settings(default)
    assert settings.namespace == NS and settings.identity == "lanes-abc"
    assert settings.service == one(default, "Service")["metadata"]["name"]
    assert settings.webhook_config == one(default, "MutatingWebhookConfiguration")["metadata"]["name"]
    assert settings.validating_config == ""  # validation disabled: nothing to watch or patch
    assert settings.secret_name == one(default, "Secret")["metadata"]["name"] == "lanes-tls"
    assert settings.lease_name == one(default, "Lease")["metadata"]["name"] == "lanes-controller"
    assert settings.manage_certs is True
    assert settings.routing is not None and settings.routing.options.outputs == ("GatewayAPI", "Istio")
    ctrl = deployment["spec"]["template"]["spec"]["initContainers"][0]
    mounts = {m["name"]: m["mountPath"] for m in ctrl["volumeMounts"]}
    assert settings.cert_dir == Path(mounts["certs"])
    assert ctrl["startupProbe"]["exec"]["command"] == ["test", "-s", f"{mounts['certs']}/tls.crt"]
    web_args = build_parser().parse_args(container(deployment, "webhook")["args"])
    assert Path(web_args.cert) == settings.cert_dir / "tls.crt"
    assert settings.repair.mode.value == "report"
    assert (settings.certs.ca_lifetime, settings.certs.leaf_lifetime) == (365 * 86400, 90 * 86400)
    assert settings.lease.lease_duration == 15
    secret = one(default, "Secret")
    assert secret["type"] == "kubernetes.io/tls" and secret["data"] == {"tls.crt": "", "tls.key": ""}
    assert "spec" not in one(default, "Lease")  # the controller owns the spec


def test_mutating_webhook_configuration(default: list[dict[str, Any]]) -> None:
    mwc = one(default, "MutatingWebhookConfiguration")
    assert "annotations" not in mwc["metadata"]  # no cert-manager injection by default
    (hook,) = mwc["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["timeoutSeconds"] == 5
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["rules"] == [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"],
         "scope": "Namespaced"}
    ]
    assert hook["namespaceSelector"] == {
        "matchExpressions": [{"key": "lanes", "operator": "In", "values": ["enabled"]}]
    }
    assert hook["objectSelector"] == {
        "matchExpressions": [{"key": "lanes.io/inject", "operator": "NotIn", "values": ["false"]}]
    }
    conditions = {c["name"]: c["expression"] for c in hook["matchConditions"]}
    assert conditions["not-own-namespace"] == "request.namespace != 'lanes-system'"
    assert "hostNetwork" in conditions["not-host-network"]
    service = one(default, "Service")
    assert hook["clientConfig"] == {
        "service": {"name": service["metadata"]["name"], "namespace": NS, "path": "/mutate", "port": 443}
    }
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"},
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"},  # the controller's
    ]
    assert service["spec"]["selector"] == one(default, "Deployment")["spec"]["selector"]["matchLabels"]


def test_mutating_webhook_matches_the_registration_used_without_helm(helm: Helm) -> None:
    """`make demo`, the e2e tests and `lanes doctor` build the registration with webhook.admission.registration; the
    chart renders the same webhook, so what is tested without Helm is what Helm installs."""
    ca_pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    for failure_policy, timeout in (("Ignore", 5), ("Fail", 12)):
        rendered = helm.template(
            {"webhook": {"caBundle": base64.b64encode(ca_pem).decode(), "failurePolicy": failure_policy,
                         "timeoutSeconds": timeout}}
        )
        chart_hook = one(rendered, "MutatingWebhookConfiguration")["webhooks"][0]
        expected = mutating_webhook_configuration(
            name="lanes", ca_pem=ca_pem, own_namespace=NS, service=(NS, "lanes", 443),
            failure_policy=failure_policy, timeout_seconds=timeout,
        )["webhooks"][0]
        assert chart_hook.pop("matchPolicy") == "Equivalent"  # the API server's default, spelled out
        assert chart_hook == expected


def test_rbac_is_exactly_what_the_controller_and_the_watch_cache_use(default: list[dict[str, Any]]) -> None:
    cluster_role = one(default, "ClusterRole")
    assert cluster_role["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces", "pods"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["apps"],
            "resources": ["replicasets", "deployments", "statefulsets", "daemonsets"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
        # lane routing (controller.lanes.enabled): exactly webhook.controller.rbac.routing_rules()
        *[rule for rule in routing_rules() if rule["resources"] != ["events"]],
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["mutatingwebhookconfigurations"],
            "resourceNames": ["lanes"],
            "verbs": ["get", "list", "watch", "patch"],
        },
    ]
    role = one(default, "Role")
    assert role["metadata"]["namespace"] == NS
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["lanes-controller"],
            "verbs": ["get", "update"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["lanes-tls"],
         "verbs": ["get", "list", "watch", "update"]},
    ]
    sa = one(default, "ServiceAccount")["metadata"]["name"]
    for binding in (one(default, "ClusterRoleBinding"), one(default, "RoleBinding")):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NS}]
    assert one(default, "ClusterRoleBinding")["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert one(default, "RoleBinding")["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lanes"
    }
    # nothing anywhere grants wildcards or cluster-wide Secret access
    for rule in cluster_role["rules"] + role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    assert not any("secrets" in r["resources"] for r in cluster_role["rules"])


def _defaults_file(objects: list[dict[str, Any]], tmp_path: Path) -> Path:
    path = tmp_path / "defaults.yaml"
    path.write_text(one(objects, "ConfigMap")["data"]["defaults.yaml"])
    return path


def test_defaults_configmap_sets_every_cluster_default_and_loads(default: list[dict[str, Any]], tmp_path: Path) -> None:
    path = _defaults_file(default, tmp_path)
    raw = yaml.safe_load(path.read_text())
    # every ClusterDefaults field, under its own (snake_case) name: nothing left to a built-in default
    assert set(raw) == set(ClusterDefaults.model_fields)
    loaded = load_defaults(path)
    assert loaded.own_namespace == NS
    assert loaded.helper_image == "ghcr.io/lanes-io/lanes-helper:0.1.0"
    assert loaded == ClusterDefaults(own_namespace=NS, helper_image="ghcr.io/lanes-io/lanes-helper:0.1.0")


def test_optional_objects_are_absent_by_default(default: list[dict[str, Any]]) -> None:
    for kind in ("ValidatingWebhookConfiguration", "Issuer", "Certificate", "ServiceMonitor", "NetworkPolicy"):
        assert by_kind(default, kind) == [], kind


# --- other values ------------------------------------------------------------------------------------------------


def test_non_default_values_reach_the_objects(helm: Helm, tmp_path: Path) -> None:
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    objects = helm.template(
        {
            "replicaCount": 3,
            "priorityClassName": "system-cluster-critical",
            "podAntiAffinity": "hard",
            "image": {
                "webhook": {"repository": "registry.example/lanes-webhook", "tag": "dev"},
                "helper": {"repository": "registry.example/lanes-helper", "digest": "sha256:" + "a" * 64,
                           "pullPolicy": "Always"},
            },
            "webhook": {"failurePolicy": "Fail", "timeoutSeconds": 10, "caBundle": ca, "shutdownDelaySeconds": 8,
                        "preStopSleepSeconds": 12},
            "validation": {"enabled": True, "failurePolicy": "Fail"},
            "service": {"port": 9443},
            "controller": {"repair": {"evict": True}},
            "defaults": {"lane": "blue", "tagHeader": "x-env", "drain": "30s", "agent": False,
                         "prewarm": "tcp://db:5432", "resources": {"requests": {"cpu": "20m"}}},
            "podDisruptionBudget": {"minAvailable": 2},
            "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
            "networkPolicy": {"enabled": True, "apiServerCIDRs": ["10.0.0.1/32"]},
        },
        release="edge",
        namespace="platform",
    )
    deployment = one(objects, "Deployment", "edge-lanes")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 3
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert "requiredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"]
    web = container(deployment, "webhook")
    assert web["image"] == "registry.example/lanes-webhook:dev"
    assert web["lifecycle"]["preStop"]["sleep"]["seconds"] == 12
    assert pod["terminationGracePeriodSeconds"] >= 12 + 8 + 10
    assert build_parser().parse_args(web["args"]).shutdown_delay == 8
    assert one(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 2

    (mutating,) = one(objects, "MutatingWebhookConfiguration")["webhooks"]
    assert mutating["failurePolicy"] == "Fail" and mutating["timeoutSeconds"] == 10
    assert mutating["clientConfig"]["caBundle"] == ca
    assert mutating["clientConfig"]["service"] == {"name": "edge-lanes", "namespace": "platform", "path": "/mutate",
                                                   "port": 9443}
    assert {c["expression"] for c in mutating["matchConditions"]} >= {"request.namespace != 'platform'"}
    (validating,) = one(objects, "ValidatingWebhookConfiguration")["webhooks"]
    assert validating["clientConfig"]["service"]["path"] == "/validate"
    assert validating["failurePolicy"] == "Fail" and validating["sideEffects"] == "None"
    assert {r["resources"] == ["deployments", "statefulsets", "daemonsets"] for r in validating["rules"]} == {True}

    rules = one(objects, "ClusterRole")["rules"]
    assert {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]} in rules
    assert {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["validatingwebhookconfigurations"],
        "resourceNames": ["edge-lanes"],
        "verbs": ["get", "list", "watch", "patch"],
    } in rules
    settings = _controller_settings(objects, "platform")
    assert settings.validating_config == "edge-lanes" and settings.repair.mode.value == "evict"

    path = _defaults_file(objects, tmp_path)
    loaded = load_defaults(path)
    assert (loaded.own_namespace, loaded.lane, loaded.tag_header, loaded.drain, loaded.agent) == (
        "platform", "blue", "x-env", "30s", False)
    assert loaded.helper_image == "registry.example/lanes-helper@sha256:" + "a" * 64
    assert loaded.image_pull_policy == "Always"
    assert loaded.resources.requests == {"cpu": "20m", "memory": "32Mi"}  # helm merges maps

    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["scheme"] == "https"
    assert monitor["spec"]["endpoints"][0]["tlsConfig"]["serverName"] == "edge-lanes.platform.svc"
    policy = one(objects, "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "https", "protocol": "TCP"},
                                                     {"port": "metrics", "protocol": "TCP"}]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["https", "metrics"]
    assert policy["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]


def test_cert_manager_mode_replaces_self_managed_certificates(helm: Helm) -> None:
    objects = helm.template({"certManager": {"enabled": True}, "validation": {"enabled": True}})
    issuers = {o["metadata"]["name"]: o["spec"] for o in by_kind(objects, "Issuer")}
    assert issuers == {"lanes-selfsigned": {"selfSigned": {}}, "lanes-ca": {"ca": {"secretName": "lanes-ca"}}}
    certificates = {o["metadata"]["name"]: o["spec"] for o in by_kind(objects, "Certificate")}
    assert certificates["lanes-ca"]["isCA"] is True
    serving = certificates["lanes"]
    assert serving["dnsNames"][0] == "lanes.lanes-system.svc"
    assert serving["issuerRef"]["name"] == "lanes-ca"
    deployment = one(objects, "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["certs"]["secret"]["secretName"] == serving["secretName"] == "lanes-tls"
    assert by_kind(objects, "Secret") == []  # cert-manager writes it
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        config = one(objects, kind)
        assert config["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": "lanes-system/lanes"}
        assert "caBundle" not in config["webhooks"][0]["clientConfig"]
    # the controller neither manages certificates nor may touch Secrets or webhook configurations
    settings = _controller_settings(objects)
    assert settings.manage_certs is False and settings.cert_dir is None
    assert "startupProbe" not in deployment["spec"]["template"]["spec"]["initContainers"][0]
    rules = one(objects, "ClusterRole")["rules"] + one(objects, "Role")["rules"]
    touched = {res for rule in rules for res in rule["resources"]}
    assert not touched & {"secrets", "mutatingwebhookconfigurations", "validatingwebhookconfigurations"}


def test_cert_manager_with_an_existing_issuer(helm: Helm) -> None:
    ref = {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    objects = helm.template({"certManager": {"enabled": True, "issuerRef": ref}})
    assert by_kind(objects, "Issuer") == []
    assert one(objects, "Certificate")["spec"]["issuerRef"] == ref


def test_single_replica_renders_no_disruption_budget(helm: Helm) -> None:
    objects = helm.template({"replicaCount": 1})
    assert one(objects, "Deployment")["spec"]["replicas"] == 1
    assert by_kind(objects, "PodDisruptionBudget") == []  # minAvailable 1 of 1 would block node drains


def test_controller_can_be_disabled_with_external_certificates(helm: Helm) -> None:
    objects = helm.template({"controller": {"enabled": False}, "tls": {"existingSecret": "mine"},
                             "webhook": {"caBundle": "QUJD"}})
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["webhook"] and "initContainers" not in pod
    assert {v["name"]: v for v in pod["volumes"]}["certs"]["secret"]["secretName"] == "mine"
    assert by_kind(objects, "Lease") == [] and by_kind(objects, "Secret") == []
    assert [p["name"] for p in one(objects, "Service")["spec"]["ports"]] == ["https"]


# --- rejected values -------------------------------------------------------------------------------------------

REJECTED = [
    ({"replicaCount": "two"}, "/replicaCount"),
    ({"replicaCount": -1}, "/replicaCount"),
    ({"webhook": {"failurePolicy": "Sometimes"}}, "/webhook/failurePolicy"),
    ({"webhook": {"timeoutSeconds": 31}}, "/webhook/timeoutSeconds"),
    ({"webhook": {"timeoutSeconds": "5"}}, "/webhook/timeoutSeconds"),
    ({"webhook": {"caBundle": "not base64!"}}, "/webhook/caBundle"),
    ({"webhok": {}}, "webhok"),
    ({"defaults": {"agentPort": "15400x"}}, "/defaults/agentPort"),
    ({"defaults": {"warmup": "two minutes"}}, "/defaults/warmup"),
    ({"defaults": {"prewarmPolicy": "block"}}, "/defaults/prewarmPolicy"),
    ({"defaults": {"lane": "Gray_1"}}, "/defaults/lane"),
    ({"defaults": {"helperImage": "x"}}, "helperImage"),  # set by the chart from image.helper
    ({"image": {"webhook": {"digest": "latest"}}}, "/image/webhook/digest"),
    ({"podAntiAffinity": "maybe"}, "/podAntiAffinity"),
    ({"certManager": {"enabled": "yes"}}, "/certManager/enabled"),
]


@pytest.mark.parametrize(("values", "where"), REJECTED, ids=[w for _, w in REJECTED])
def test_schema_rejects_wrong_types(helm: Helm, values: dict[str, Any], where: str) -> None:
    with pytest.raises(HelmError) as caught:
        helm.template(values)
    assert "values don't meet the specifications of the schema" in caught.value.stderr
    assert where in caught.value.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"terminationGracePeriodSeconds": 5}, "terminationGracePeriodSeconds (5) must be at least"),
        ({"tls": {"existingSecret": "mine"}}, "tls.existingSecret needs webhook.caBundle"),
        ({"tls": {"existingSecret": "mine"}, "webhook": {"caBundle": "QUJD"}, "certManager": {"enabled": True}},
         "are exclusive"),
        ({"controller": {"enabled": False}},
         "controller.enabled=false needs certManager.enabled or tls.existingSecret"),
    ],
)
def test_inconsistent_values_fail_with_a_reason(helm: Helm, values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError) as caught:
        helm.template(values)
    assert message in caught.value.stderr


# --- docs ------------------------------------------------------------------------------------------------------


def _leaf_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not set(value) <= {"requests", "limits"}:
            keys += _leaf_keys(value, path + ".")
        else:
            keys.append(path)
    return keys


def test_every_value_is_in_the_install_docs_and_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    docs = (REPO_ROOT / "docs" / "install.md").read_text()
    documented = set(re.findall(r"`([A-Za-z0-9_.]+)`", docs))
    keys = _leaf_keys(values)
    assert keys, "values.yaml is empty?"
    missing = [k for k in keys if k not in documented]
    assert missing == [], f"values without a row in docs/install.md: {missing}"
