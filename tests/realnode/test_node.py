"""The real node itself: it registers and turns Ready, runs real containers from locally imported images, and is
reachable from the host only through the harness (nothing of it on the host's network)."""

from __future__ import annotations

import ipaddress
import subprocess

from kubernetes import client

from devtools.realnode import RealNode
from devtools.realnode import config as cfg
from devtools.realnode.pause import PAUSE_IMAGE
from tests.namespaces import make_namespace
from tests.realnode.pods import wait_gone, wait_ready


def test_node_is_ready_with_the_pinned_components(node_k8s: client.ApiClient) -> None:
    node = client.CoreV1Api(node_k8s).read_node(cfg.NODE_NAME)
    info = node.status.node_info
    assert info.kubelet_version == "v1.37.2"
    assert info.container_runtime_version.startswith("containerd://2.3.7")
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"
    assert {a.address for a in node.status.addresses if a.type == "InternalIP"} == {cfg.NODE_IP}


def test_a_pod_runs_real_containers_from_an_imported_image(node_k8s: client.ApiClient) -> None:
    core = client.CoreV1Api(node_k8s)
    namespace = make_namespace(node_k8s)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="pause"),
        spec=client.V1PodSpec(
            termination_grace_period_seconds=5,
            containers=[client.V1Container(name="main", image=PAUSE_IMAGE, image_pull_policy="Never")],
        ),
    )
    core.create_namespaced_pod(namespace, pod)
    running = wait_ready(core, namespace, "pause")
    assert running.spec.node_name == cfg.NODE_NAME
    assert ipaddress.ip_address(running.status.pod_ip) in ipaddress.ip_network(cfg.POD_CIDR)
    status = running.status.container_statuses[0]
    assert status.state.running is not None and status.container_id.startswith("containerd://")
    core.delete_namespaced_pod("pause", namespace)
    wait_gone(core, namespace, "pause", timeout=30)
    core.delete_namespace(namespace)


def test_kubectl_logs_reaches_the_kubelet(real_node: RealNode, node_k8s: client.ApiClient, sample_image: str) -> None:
    """The API server proxies logs (and exec, port-forward) to the kubelet: by the node's InternalIP, since the
    node's name resolves nowhere (before: HTTP 500, a DNS timeout looking up the node name)."""
    core = client.CoreV1Api(node_k8s)
    namespace = make_namespace(node_k8s)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="talker"),
        spec=client.V1PodSpec(
            termination_grace_period_seconds=1,
            containers=[client.V1Container(name="app", image=sample_image, image_pull_policy="Never")],
        ),
    )
    core.create_namespaced_pod(namespace, pod)
    wait_ready(core, namespace, "talker", timeout=90)
    result = real_node.kubectl("logs", "-n", namespace, "talker")
    assert '"event": "start"' in result.stdout, result.stdout + result.stderr
    assert '"event": "start"' in core.read_namespaced_pod_log("talker", namespace)
    core.delete_namespace(namespace)


def test_kubectl_runs_inside_the_namespace(real_node: RealNode) -> None:
    result = real_node.kubectl("get", "nodes", "-o", "name")
    assert result.stdout.split() == [f"node/{cfg.NODE_NAME}"]


def test_the_node_address_exists_only_inside_its_namespace(real_node: RealNode) -> None:
    inside = real_node.run(["ip", "-o", "addr", "show"]).stdout
    outside = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    assert f"inet {cfg.NODE_IP}/" in inside
    assert f"inet {cfg.NODE_IP}/" not in outside
    # the host reaches the API server only through the harness's forward
    with real_node.dial(cfg.NODE_IP, int(real_node.state["apiserver_port"])) as sock:
        assert sock.fileno() >= 0
