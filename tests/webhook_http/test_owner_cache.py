"""The owner watch cache against the real kube-apiserver (no fake Kubernetes anywhere)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import jsonpatch
import orjson
import pytest
from kubernetes import client, config

from devtools.controlplane import ControlPlane
from tests.webhook_http.bodies import pod, review
from tests.webhook_http.support import Pki, SecretVolume, start_thread_server
from webhook.admission.owners import WatchCache, namespace_entry, workload_entry
from webhook.kube.client import Gone, split_lines


def eventually(probe: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll until ``probe()`` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def started_cache(kubeconfig: str, **kwargs: Any) -> WatchCache:
    cache = WatchCache(config.new_client_from_config(config_file=kubeconfig), **kwargs)
    cache.start()
    assert cache.wait_synced(60), "owner cache did not sync"
    return cache


@pytest.fixture
def cache(control_plane: ControlPlane) -> Iterator[WatchCache]:
    watch_cache = started_cache(str(control_plane.kubeconfig))
    yield watch_cache
    watch_cache.stop()
    assert not any(r.thread.is_alive() for r in watch_cache._reflectors), "watch threads outlived stop()"


def deployment(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
            },
        },
    }


def test_deployment_created_updated_and_deleted(cache: WatchCache, k8s: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(k8s)
    apps.create_namespaced_deployment(
        namespace, deployment("web", {"lanes.io/lane": "gray", "team": "payments", "lanes.io/drain": "20s"})
    )
    entry = eventually(lambda: cache.workload_metadata(namespace, "Deployment", "web"), "the Deployment")
    assert entry["name"] == "web"
    assert entry["annotations"] == {"lanes.io/lane": "gray", "lanes.io/drain": "20s"}  # lanes.io/* only
    assert entry["ownerReferences"] == []

    apps.patch_namespaced_deployment(
        "web", namespace, {"metadata": {"annotations": {"lanes.io/lane": "blue", "lanes.io/drain": None}}}
    )
    eventually(
        lambda: cache.workload_metadata(namespace, "Deployment", "web")["annotations"] == {"lanes.io/lane": "blue"},
        "the annotation change",
    )

    apps.delete_namespaced_deployment("web", namespace)
    eventually(lambda: cache.workload_metadata(namespace, "Deployment", "web") is None, "the deletion")


def test_replicaset_keeps_its_controller_reference(cache: WatchCache, k8s: client.ApiClient, namespace: str) -> None:
    """kube-controller-manager creates the ReplicaSet; the cache keeps just enough to walk Pod -> RS -> Deployment."""
    created = client.AppsV1Api(k8s).create_namespaced_deployment(namespace, deployment("api", {}))

    def replicaset() -> dict[str, Any] | None:
        for (ns, _), entry in cache._workloads["ReplicaSet"].store.items():
            if ns == namespace:
                return entry
        return None

    entry = eventually(replicaset, "the Deployment's ReplicaSet")
    assert entry["name"].startswith("api-")
    assert entry["ownerReferences"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "controller": True}
    ]
    assert cache.workload_metadata(namespace, "ReplicaSet", entry["name"]) is entry
    assert created.metadata.uid  # the real object exists; the cache stored metadata only


def test_namespace_labels_and_annotations(cache: WatchCache, k8s: client.ApiClient, namespace: str) -> None:
    client.CoreV1Api(k8s).patch_namespace(
        namespace,
        {"metadata": {"labels": {"lanes": "enabled"}, "annotations": {"lanes.io/warmup": "60s", "owner": "x"}}},
    )

    def updated() -> dict[str, Any] | None:
        entry = cache.namespace_metadata(namespace)
        return entry if entry and entry["labels"].get("lanes") == "enabled" else None

    entry = eventually(updated, "the namespace change")
    assert entry["annotations"] == {"lanes.io/warmup": "60s"}
    assert entry["labels"]["kubernetes.io/metadata.name"] == namespace


def test_jobs_and_cronjobs_are_watched(cache: WatchCache, k8s: client.ApiClient, namespace: str) -> None:
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "job", "image": "registry.example/job:1"}]}}
    client.BatchV1Api(k8s).create_namespaced_cron_job(
        namespace,
        {
            "metadata": {"name": "nightly", "annotations": {"lanes.io/lane": "gray"}},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}},
        },
    )
    entry = eventually(lambda: cache.workload_metadata(namespace, "CronJob", "nightly"), "the CronJob")
    assert entry["annotations"] == {"lanes.io/lane": "gray"}
    assert cache.workload_metadata(namespace, "Unknown", "nightly") is None


def test_admission_resolves_through_the_cache(
    cache: WatchCache, k8s: client.ApiClient, namespace: str, pki: Pki, secret_volume: SecretVolume
) -> None:
    """The whole chain with real data: Deployment annotation -> RS from the controller -> pod admitted."""
    client.AppsV1Api(k8s).create_namespaced_deployment(namespace, deployment("shop", {"lanes.io/lane": "gray"}))

    def replicaset_name() -> str | None:
        return next((name for (ns, name) in cache._workloads["ReplicaSet"].store if ns == namespace), None)

    rs = eventually(replicaset_name, "the ReplicaSet")
    eventually(lambda: cache.workload_metadata(namespace, "Deployment", "shop"), "the Deployment")
    server = start_thread_server(pki, secret_volume.cert, secret_volume.key, owners=cache)
    try:
        owned = pod(
            name="",
            namespace=namespace,
            labels={"app": "shop"},
            ownerReferences=[
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": "x", "controller": True}
            ],
        )
        response = server.client.post("/mutate", content=orjson.dumps(review(owned, uid="u", namespace=namespace)))
        assert response.status_code == 200
        assert server.client.get("/readyz").status_code == 200  # the cache is synced
    finally:
        server.stop()
    result = response.json()["response"]
    mutated = jsonpatch.apply_patch(owned, orjson.loads(base64.b64decode(result["patch"])))
    assert mutated["metadata"]["labels"]["lanes.io/lane"] == "gray"  # from the Deployment, via the RS
    assert mutated["metadata"]["labels"]["lanes.io/app"] == "shop"
    assert not any("not in the watch cache" in w for w in result.get("warnings", []))


@pytest.fixture(scope="module")
def private_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver of our own, so restarting it does not disturb the shared control plane. Its watch
    cache is off and etcd is compacted every 2 seconds: watches go straight to etcd, and old resourceVersions
    really expire (with the watch cache on, kube-apiserver answers an old resourceVersion with a snapshot)."""
    plane = ControlPlane(
        controller_manager=False,
        scheduler=False,
        apiserver_args=["--etcd-compaction-interval=2s", "--watch-cache=false"],
        workdir=tmp_path_factory.mktemp("plane"),
    )
    plane.start()
    yield plane
    plane.stop(remove_workdir=True)


def test_expired_resource_version_is_gone(private_plane: ControlPlane) -> None:
    """A watch from a compacted resourceVersion gets 410 from the real server; the reflector raises Gone,
    which its loop answers with a relist."""
    admin = config.new_client_from_config(config_file=str(private_plane.kubeconfig))
    core = client.CoreV1Api(admin)
    # Some writes, so that compaction moves past resourceVersion 1.
    for index in range(3):
        core.create_namespace({"metadata": {"name": f"churn-{index}"}})
    cache = WatchCache(admin, watch_timeout=1)  # not started: one reflector is driven by hand
    reflector = cache._namespaces

    def watch_from_one_is_gone() -> bool:
        try:
            reflector.watch("1")  # before compaction this replays history and ends after timeoutSeconds
        except Gone:
            return True
        return False

    eventually(watch_from_one_is_gone, "410 Gone for resourceVersion 1", timeout=120)
    resource_version = reflector.list()
    assert int(resource_version) > 1 and reflector.synced.is_set() and "churn-0" in reflector.store


def test_reconnects_after_api_server_restart(private_plane: ControlPlane) -> None:
    """Restart kube-apiserver under a running cache: it backs off, reconnects (relisting if its
    resourceVersion expired meanwhile), and sees objects created after the restart."""
    plane = private_plane
    watch_cache = started_cache(str(plane.kubeconfig), backoff_initial=0.2, backoff_max=1.0)
    try:
        admin = config.new_client_from_config(config_file=str(plane.kubeconfig))
        core = client.CoreV1Api(admin)
        core.create_namespace({"metadata": {"name": "before", "annotations": {"lanes.io/lane": "a"}}})
        eventually(lambda: watch_cache.namespace_metadata("before"), "namespace created before the restart")

        plane.stop_apiserver()
        eventually(
            lambda: sum(s.watch_errors for s in watch_cache.stats().values()) > 0,
            "the cache to notice the API server is gone",
        )
        plane.start_apiserver()
        core.create_namespace({"metadata": {"name": "after", "annotations": {"lanes.io/lane": "b"}}})
        entry = eventually(lambda: watch_cache.namespace_metadata("after"), "namespace created after the restart")
        assert entry["annotations"] == {"lanes.io/lane": "b"}
        assert watch_cache.is_synced()
        assert watch_cache.namespace_metadata("before") is not None
    finally:
        watch_cache.stop()
    assert not any(r.thread.is_alive() for r in watch_cache._reflectors)


# --- pure parts, no cluster ------------------------------------------------------------------------------


class _Chunks:
    """Stands in for urllib3's streaming response: yields the given chunks."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def stream(self, amt: int | None = None, decode_content: bool = False) -> Iterator[bytes]:
        return iter(self.chunks)


def test_watch_stream_is_split_into_events_across_chunk_boundaries() -> None:
    stream = _Chunks(b'{"a":1}\n{"b"', b':2}\n\n{"c":3}', b"\n", b'{"d":4}')
    assert list(split_lines(stream.stream())) == [b'{"a":1}', b'{"b":2}', b'{"c":3}', b'{"d":4}']


def test_entries_keep_only_what_resolution_needs() -> None:
    metadata = {
        "name": "web-5d8f9c7b4",
        "namespace": "shop",
        "uid": "1",
        "labels": {"app": "web", "pod-template-hash": "5d8f9c7b4"},
        "annotations": {"lanes.io/lane": "gray", "deployment.kubernetes.io/revision": "3"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "uid": "2",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
        "managedFields": [{"manager": "kube-controller-manager"}],
    }
    assert workload_entry(metadata) == {
        "name": "web-5d8f9c7b4",
        "annotations": {"lanes.io/lane": "gray"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True}],
    }
    assert namespace_entry({"name": "shop", "labels": {"lanes": "enabled"}, "annotations": {"x": "y"}}) == {
        "labels": {"lanes": "enabled"},
        "annotations": {},
    }
