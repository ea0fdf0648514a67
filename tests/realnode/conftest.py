"""Fixtures of the real-node tests: one real node (kubelet, containerd, CNI, kube-proxy and the control plane it
joins, all in private namespaces; see devtools/realnode) per session.

Every test here is marked ``controlplane`` and ``realnode``: ``make test-fast`` leaves them out. Where a real node
cannot run (not root, no namespaces, no binaries) the tests fail with one line saying why in CI (``CI`` set) and
skip loudly elsewhere.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from devtools.realnode import RealNode, RealNodeError, RealNodeUnavailable, chart
from devtools.realnode.chart import InstalledLanes
from devtools.realnode.config import CLUSTER_DNS_IP
from tests.namespaces import make_namespace

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.controlplane)
            item.add_marker(pytest.mark.realnode)


def unavailable(reason: str) -> None:
    """Fail in CI, skip loudly elsewhere: a real-node test never silently passes without a node."""
    if os.environ.get("CI"):
        pytest.fail(f"real node unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"!!! SKIPPING real-node tests: {reason} !!!")


def start_node(**kwargs: object) -> RealNode:
    node = RealNode(**kwargs)  # type: ignore[arg-type]
    try:
        node.start()
    except RealNodeUnavailable as exc:
        unavailable(str(exc))
    except RealNodeError as exc:
        pytest.fail(f"real node failed to start: {exc}", pytrace=False)
    return node


def _reporter(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Write past pytest's capture (the node's start time and memory belong in every CI log)."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        if capture is None:
            print(line)
            return
        with capture.global_and_fixture_disabled():
            print(f"\n{line}", flush=True)

    return say


class MemoryPeak:
    """Samples the node's resident memory (its processes, the control plane's, the shims and the pods' cgroup)
    every few seconds, for the budget the issue sets (the real-node part of the suite within 3 GiB)."""

    def __init__(self, node: RealNode, period: float = 5.0) -> None:
        self.node, self.period = node, period
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="realnode-memory", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            usage = self.node.memory()
        except Exception:  # a sample racing the teardown: the next one (or none) counts
            return
        total = sum(usage.values())
        if total > self.peak_total:
            self.peak_total, self.peak = total, usage

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self.period):
            self._sample()

    def stop(self) -> str:
        self._stop.set()
        self._thread.join(timeout=self.period + 5)
        self._sample()
        parts = ", ".join(f"{name} {value / 2**20:.0f}" for name, value in sorted(self.peak.items()))
        return f"peak resident memory {self.peak_total / 2**20:.0f} MiB ({parts} MiB)"


@pytest.fixture(scope="session")
def real_node(request: pytest.FixtureRequest) -> Iterator[RealNode]:
    node = start_node()
    say = _reporter(request)
    say(f"[realnode] Ready in {node.start_seconds:.1f}s: {node.state.get('timings')}")
    sampler = MemoryPeak(node)
    yield node
    say(f"[realnode] {sampler.stop()}")
    if request.session.testsfailed:
        node.keep_workdir = True
        print(f"\nreal-node logs (kept for {request.session.testsfailed} failed test(s)): {node.logs_dir}")
    node.stop()


@pytest.fixture(scope="session")
def node_k8s(real_node: RealNode) -> client.ApiClient:
    """A kubernetes client (system:masters) of the real node's API server."""
    return config.new_client_from_config(config_file=str(real_node.kubeconfig))


@pytest.fixture(scope="session")
def lanes(real_node: RealNode) -> Iterator[InstalledLanes]:
    """charts/lanes installed with helm on the real node from the images built here (default failurePolicy)."""
    missing = [k for k in ("helper", "webhook", "sample-app") if k not in real_node.images]
    if missing:
        pytest.fail(f"the real node has no {', '.join(missing)} image: devtools.images.ensure_images()", pytrace=False)
    try:
        installed = chart.install(real_node)
    except RealNodeError as exc:
        pytest.fail(f"helm install of charts/lanes on the real node failed: {exc}", pytrace=False)
    print(f"\n[realnode] charts/lanes installed and injecting in {installed.install_seconds:.1f}s")
    yield installed


@pytest.fixture
def enabled_ns(real_node: RealNode, lanes: InstalledLanes, node_k8s: client.ApiClient) -> Iterator[str]:
    """A fresh namespace where injection was turned on with `kubectl label namespace X lanes=enabled`."""
    name = make_namespace(node_k8s)
    chart.enable_namespace(real_node, name)
    yield name
    client.CoreV1Api(node_k8s).delete_namespace(name)


@pytest.fixture
def sample_image(real_node: RealNode) -> str:
    return real_node.images["sample-app"]


@pytest.fixture(scope="session")
def cluster_dns(real_node: RealNode, request: pytest.FixtureRequest) -> str:
    """The node's cluster DNS answering: CoreDNS is deployed when the node starts (without waiting for it); tests
    that resolve Service names wait for it here. Returns the kube-dns ClusterIP ``ClusterFirst`` pods ask."""
    try:
        waited = real_node.wait_dns()
    except RealNodeUnavailable as exc:
        unavailable(str(exc))
    except RealNodeError as exc:
        pytest.fail(f"the real node's cluster DNS did not come up: {exc}", pytrace=False)
    _reporter(request)(
        f"[realnode] cluster DNS answering {real_node.dns_ready_seconds:.1f}s after the node start began "
        f"(deploy took {real_node.dns_deploy_seconds:.1f}s of the start, waited {waited:.1f}s here)"
    )
    return CLUSTER_DNS_IP
