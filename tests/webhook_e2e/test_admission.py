"""Pods admitted by the real kube-apiserver through a real `lanes-webhook serve` registration."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devtools.controlplane.cluster import free_port
from tests.namespaces import make_namespace, wait_for_default_service_account
from tests.webhook_e2e.conftest import (
    OWN_NAMESPACE,
    WebhookServer,
    register,
    unregister,
    webhook_configuration,
)


def app_pod(name: str, **meta: Any) -> dict[str, Any]:
    """A pod whose app container already satisfies Pod Security `restricted`."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **meta},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/app:1",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                    "securityContext": {
                        "runAsUser": 1000,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def create(k8s: client.ApiClient, namespace: str, pod: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    kwargs = {"dry_run": "All"} if dry_run else {}
    response = client.CoreV1Api(k8s).create_namespaced_pod(namespace, pod, _preload_content=False, **kwargs)
    result: dict[str, Any] = json.loads(response.data)
    return result


def init_containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"].get("initContainers", [])}


def assert_injected(pod: dict[str, Any], lane: str = "base") -> None:
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["labels"]["lanes.io/lane"] == lane
    assert meta["labels"]["lanes.io/app"]
    status = json.loads(meta["annotations"]["lanes.io/status"])
    assert status  # inspectable JSON
    agent = init_containers(pod)["lanes-agent"]
    assert agent["restartPolicy"] == "Always"
    assert agent["readinessProbe"]["httpGet"]["path"] == "/ready"
    agent_port = agent["ports"][0]["containerPort"]
    assert agent["ports"][0]["name"] == "lanes-agent"
    app = spec["containers"][0]
    env = {e["name"]: e for e in app["env"]}
    assert env["LANES_LANE"]["value"] == lane
    assert env["LANES_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert f"lanes.lane={lane}" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    assert app["lifecycle"]["preStop"]["httpGet"]["path"] == "/prestop"
    assert app["lifecycle"]["preStop"]["httpGet"]["port"] == agent_port
    assert {"conditionType": "lanes.io/registered"} in spec["readinessGates"]
    assert [g["conditionType"] for g in spec["readinessGates"]].count("lanes.io/registered") == 1


def assert_untouched(pod: dict[str, Any]) -> None:
    assert "lanes.io/status" not in (pod["metadata"].get("annotations") or {})
    assert "lanes.io/lane" not in (pod["metadata"].get("labels") or {})
    assert not pod["spec"].get("initContainers")
    assert not pod["spec"].get("readinessGates")


def test_pod_in_enabled_namespace_gets_every_injection(
    webhook_server: WebhookServer, k8s: client.ApiClient, enabled_namespace: str
) -> None:
    pod = app_pod("web", labels={"app": "web"}, annotations={"lanes.io/drain": "45s"})
    created = create(k8s, enabled_namespace, pod)
    assert_injected(created)
    assert created["metadata"]["labels"]["lanes.io/app"] == "web"
    # drain 45s + shutdown budget does not fit the default 30s grace period: raised, never lowered
    assert created["spec"]["terminationGracePeriodSeconds"] > 45
    # what the API server stored is what it returned
    stored = client.CoreV1Api(k8s).read_namespaced_pod("web", enabled_namespace, _preload_content=False)
    assert json.loads(stored.data)["spec"]["initContainers"] == created["spec"]["initContainers"]


def test_prewarm_init_container_is_injected_when_configured(
    webhook_server: WebhookServer, k8s: client.ApiClient, enabled_namespace: str
) -> None:
    pod = app_pod("web", annotations={"lanes.io/prewarm": "tcp://postgres.db:5432,https://auth.shop.svc/healthz"})
    created = create(k8s, enabled_namespace, pod)
    prewarm = init_containers(created)["lanes-prewarm"]
    env = {e["name"]: e.get("value") for e in prewarm["env"]}
    assert env["LANES_PREWARM_TARGETS"] == "tcp://postgres.db:5432,https://auth.shop.svc/healthz"
    names = [c["name"] for c in created["spec"]["initContainers"]]
    assert names.index("lanes-prewarm") < names.index("lanes-agent") or "lanes-agent" in names


def test_plain_namespace_is_untouched(webhook_server: WebhookServer, k8s: client.ApiClient, namespace: str) -> None:
    assert_untouched(create(k8s, namespace, app_pod("web")))


def test_opted_out_pod_is_untouched(
    webhook_server: WebhookServer, k8s: client.ApiClient, enabled_namespace: str
) -> None:
    assert_untouched(create(k8s, enabled_namespace, app_pod("web", labels={"lanes.io/inject": "false"})))


def test_host_network_pod_is_untouched(
    webhook_server: WebhookServer, k8s: client.ApiClient, enabled_namespace: str
) -> None:
    pod = app_pod("web")
    pod["spec"]["hostNetwork"] = True
    assert_untouched(create(k8s, enabled_namespace, pod))


def test_own_namespace_is_untouched(webhook_server: WebhookServer, k8s: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s)
    try:
        core.create_namespace({"metadata": {"name": OWN_NAMESPACE, "labels": {"lanes": "enabled"}}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    wait_for_default_service_account(k8s, OWN_NAMESPACE)
    assert_untouched(create(k8s, OWN_NAMESPACE, app_pod("own"), dry_run=True))


def test_restricted_namespace_admits_injected_pod(webhook_server: WebhookServer, k8s: client.ApiClient) -> None:
    name = make_namespace(
        k8s,
        labels={
            "lanes": "enabled",
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        },
    )
    try:
        created = create(k8s, name, app_pod("web", annotations={"lanes.io/prewarm": "tcp://db:5432"}))
        assert_injected(created)
        assert "lanes-prewarm" in init_containers(created)
        # and a non-compliant app container is still rejected: the namespace really enforces
        bad = app_pod("bad")
        bad["spec"]["containers"][0]["securityContext"] = {"privileged": True}
        with pytest.raises(ApiException) as caught:
            create(k8s, name, bad)
        assert caught.value.status == 403 and "restricted" in caught.value.body
    finally:
        client.CoreV1Api(k8s).delete_namespace(name)


def test_deployment_annotations_reach_its_pods(
    webhook_server: WebhookServer, k8s: client.ApiClient, enabled_namespace: str
) -> None:
    labels = {"app": "checkout"}
    template = app_pod("ignored", labels=labels)
    del template["metadata"]["name"], template["apiVersion"], template["kind"]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "checkout", "annotations": {"lanes.io/lane": "gray", "lanes.io/drain": "40s"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": template},
    }
    client.AppsV1Api(k8s).create_namespaced_deployment(enabled_namespace, deployment)
    deadline = time.monotonic() + 60
    pods: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(pods) < 2:
        response = client.CoreV1Api(k8s).list_namespaced_pod(enabled_namespace, _preload_content=False)
        pods = json.loads(response.data)["items"]
        time.sleep(0.2)
    assert len(pods) == 2
    for pod in pods:
        assert_injected(pod, lane="gray")
        assert pod["metadata"]["labels"]["lanes.io/app"] == "checkout"
        assert pod["spec"]["terminationGracePeriodSeconds"] > 40


def test_dry_run_returns_mutated_pod_and_persists_nothing(
    webhook_server: WebhookServer, k8s: client.ApiClient, enabled_namespace: str
) -> None:
    created = create(k8s, enabled_namespace, app_pod("dry"), dry_run=True)
    assert_injected(created)
    assert client.CoreV1Api(k8s).list_namespaced_pod(enabled_namespace).items == []


def test_webhook_down_ignore_admits_uninjected_and_fail_rejects(
    webhook_server: WebhookServer, k8s: client.ApiClient, enabled_namespace: str
) -> None:
    dead = f"https://127.0.0.1:{free_port()}"
    try:
        register(k8s, webhook_configuration(dead, webhook_server.ca_pem, failure_policy="Ignore", timeout=2))
        assert_untouched(create(k8s, enabled_namespace, app_pod("ignored")))
        register(k8s, webhook_configuration(dead, webhook_server.ca_pem, failure_policy="Fail", timeout=2))
        with pytest.raises(ApiException) as caught:
            create(k8s, enabled_namespace, app_pod("rejected"))
        assert caught.value.status == 500
        message = json.loads(caught.value.body)["message"]
        assert 'failed calling webhook "pods.lanes.io"' in message
        assert "connection refused" in message
    finally:
        register(k8s, webhook_configuration(webhook_server.url, webhook_server.ca_pem))
    assert_injected(create(k8s, enabled_namespace, app_pod("recovered")))


def test_invalid_annotation_is_a_warning_and_uses_the_default(
    webhook_server: WebhookServer, k8s: client.ApiClient, enabled_namespace: str
) -> None:
    api = client.CoreV1Api(k8s)
    pod = app_pod("odd", annotations={"lanes.io/drain": "forever", "lanes.io/lane": "Not_A_Label"})
    response = api.create_namespaced_pod(enabled_namespace, pod, _preload_content=False)
    created = json.loads(response.data)
    assert_injected(created, lane="base")
    warnings = response.headers.get("Warning", "")
    assert "lanes.io/drain" in warnings and "forever" in warnings
    assert "lanes.io/lane" in warnings


def test_unregistered_webhook_leaves_pods_alone(
    webhook_server: WebhookServer, k8s: client.ApiClient, enabled_namespace: str
) -> None:
    unregister(k8s)
    try:
        assert_untouched(create(k8s, enabled_namespace, app_pod("plain")))
    finally:
        register(k8s, webhook_configuration(webhook_server.url, webhook_server.ca_pem))
