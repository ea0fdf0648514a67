"""The test control plane is real: the pinned kube-apiserver, real validation, real controllers."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devtools.controlplane import ControlPlane, ControlPlaneError
from devtools.controlplane.binaries import KUBERNETES_VERSION


def test_version_is_the_pinned_release(control_plane: ControlPlane) -> None:
    version = control_plane.version()
    assert version["gitVersion"] == KUBERNETES_VERSION
    assert version["minor"] == KUBERNETES_VERSION.split(".")[1]


def test_enabled_namespace_label_round_trips(k8s: client.ApiClient, enabled_namespace: str) -> None:
    namespace = client.CoreV1Api(k8s).read_namespace(enabled_namespace)
    assert namespace.metadata.labels["lanes"] == "enabled"
    selected = client.CoreV1Api(k8s).list_namespace(label_selector="lanes in (enabled)")
    assert enabled_namespace in {ns.metadata.name for ns in selected.items}


def test_api_server_rejects_invalid_readiness_gate(k8s: client.ApiClient, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad-gate"},
        "spec": {
            "containers": [{"name": "app", "image": "registry.example/app:1"}],
            "readinessGates": [{"conditionType": "not a qualified name!"}],
        },
    }
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(k8s).create_namespaced_pod(namespace, pod)
    assert caught.value.status == 422
    assert "spec.readinessGates[0].conditionType" in caught.value.body
    assert "qualified name" in caught.value.body


def test_deployment_creates_replicaset_and_pods(k8s: client.ApiClient, namespace: str) -> None:
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
            },
        },
    }
    client.AppsV1Api(k8s).create_namespaced_deployment(namespace, deployment)
    deadline = time.monotonic() + 60
    pods: list[client.V1Pod] = []
    while time.monotonic() < deadline:
        pods = client.CoreV1Api(k8s).list_namespaced_pod(namespace, label_selector="app=web").items
        if len(pods) == 2:
            break
        time.sleep(0.2)
    replicasets = client.AppsV1Api(k8s).list_namespaced_replica_set(namespace).items
    assert len(replicasets) == 1
    assert replicasets[0].metadata.owner_references[0].name == "web"
    assert len(pods) == 2
    assert {p.metadata.owner_references[0].name for p in pods} == {replicasets[0].metadata.name}


@pytest.mark.controlplane  # starts a second one of its own (the fixture only makes sure the binaries exist)
def test_component_failing_at_startup_is_named_with_its_log(control_plane: ControlPlane) -> None:
    broken = ControlPlane(
        controller_manager=False, scheduler=False, apiserver_args=["--no-such-flag=1"], startup_timeout=30
    )
    with pytest.raises(ControlPlaneError) as caught:
        broken.start()
    message = str(caught.value)
    assert message.startswith("kube-apiserver exited")
    assert "unknown flag: --no-such-flag" in message
    assert str(broken.logs_dir / "kube-apiserver.log") in message
    # the harness cleaned up what it had started
    assert not broken.components["etcd"].alive()
    broken.stop(remove_workdir=True)
