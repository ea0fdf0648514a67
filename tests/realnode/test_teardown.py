"""A real node leaves the host as it found it: while it runs and after it stopped, no host iptables rule, kernel
setting, mount, cgroup, process or file of it exists outside the run's folder (and that folder is removed).

It starts its own node (the session's one is stopped only at the end of the run) and compares host snapshots
(devtools/realnode/hostcheck.py) taken before, during and after.
"""

from __future__ import annotations

from kubernetes import client, config

from devtools.realnode import hostcheck
from devtools.realnode.pause import PAUSE_IMAGE
from tests.realnode.conftest import start_node
from tests.realnode.pods import wait_ready


def _markers(node_binaries: dict[str, object]) -> tuple[str, ...]:
    folders = {str(getattr(p, "parent", p)) for p in node_binaries.values()}
    return ("lanes-realnode-", "containerd-shim", *sorted(folders))


def test_teardown_leaves_nothing_on_the_host() -> None:
    from devtools.realnode.artifacts import ensure_artifacts

    artifacts = ensure_artifacts(with_project_images=False)
    env = artifacts.debian.environment()
    markers = _markers(dict(artifacts.binaries))
    before = hostcheck.snapshot(env, markers)

    node = start_node(with_project_images=False)
    try:
        k8s = config.new_client_from_config(config_file=str(node.kubeconfig))
        core = client.CoreV1Api(k8s)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="teardown")))
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name="left-running"),
            spec=client.V1PodSpec(
                containers=[client.V1Container(name="main", image=PAUSE_IMAGE, image_pull_policy="Never")]
            ),
        )
        # the default service account appears a moment after the namespace
        from tests.namespaces import wait_for_default_service_account

        wait_for_default_service_account(k8s, "teardown")
        core.create_namespaced_pod("teardown", pod)
        wait_ready(core, "teardown", "left-running")  # a pod still running at teardown: its cgroups and shim
        during = hostcheck.snapshot(env, markers)
        workdir = node.workdir
    finally:
        node.stop()
    after = hostcheck.snapshot(env, markers)

    # while running: the node's processes exist on the host's process list (that is how the check sees them),
    # but nothing else of it is visible on the host
    during_other = [d for d in before.differences(during) if not d.startswith(("process left", "cgroup left"))]
    assert during_other == [], "\n".join(during_other)
    assert any("kubelet" in p for p in during.processes - before.processes), "the check must see the running node"
    assert during.cgroups - before.cgroups, "the check must see the run's cgroup tree"
    left = before.differences(after)
    assert left == [], "\n".join(left)
    assert not workdir.exists()
