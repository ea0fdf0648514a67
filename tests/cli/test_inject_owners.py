"""``lanes inject`` follows a pod's owners as the webhook does (issue 11.3).

``kubectl get pod -o yaml`` prints a Deployment's pod owned by ReplicaSet ``web-7d9f8c`` with label
``pod-template-hash: 7d9f8c``. The webhook resolves that owner chain through its watch cache (ReplicaSet, then
Deployment ``web``) and names the app ``web``; the offline preview must say the same. Each case is compared with
the webhook's own resolution (``webhook.injection.resolve.resolve_pod``) given the owners a cluster would hold, as
``webhook.admission.owners.workload_entry`` stores them; a dict stands in for the watch cache, which needs an API
server to fill and adds nothing to what is compared.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.cli.support import config_of, documents, lanes
from webhook.contract.defaults import ClusterDefaults
from webhook.injection.resolve import resolve_pod


class Cache:
    """Stand-in for webhook.admission.owners.WatchCache: the same entries, held in a dict."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        from webhook.admission.owners import workload_entry

        self.entries = {
            (o["metadata"].get("namespace", ""), o["kind"], o["metadata"]["name"]): workload_entry(o["metadata"])
            for o in objects
        }

    def namespace_metadata(self, name: str) -> dict[str, Any] | None:
        return {"labels": {}, "annotations": {}}

    def workload_metadata(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        return self.entries.get((namespace, kind, name))


def ref(kind: str, name: str, api: str = "apps/v1") -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "name": name, "uid": "u-" + name, "controller": True}


DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "annotations": {"lanes.io/lane": "gray"}},
    "spec": {"selector": {"matchLabels": {"tier": "web"}}, "template": {
        "metadata": {"labels": {"tier": "web"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}},
}
REPLICASET = {
    "apiVersion": "apps/v1", "kind": "ReplicaSet",
    "metadata": {
        "name": "web-7d9f8c", "namespace": "shop", "labels": {"tier": "web", "pod-template-hash": "7d9f8c"},
        "annotations": {"deployment.kubernetes.io/revision": "1"}, "ownerReferences": [ref("Deployment", "web")],
    },
    "spec": {"selector": {"matchLabels": {"tier": "web"}}, "template": {
        "metadata": {"labels": {"tier": "web", "pod-template-hash": "7d9f8c"}},
        "spec": {"containers": [{"name": "app", "image": "x"}]}}},
}
POD = {  # as `kubectl get pod -o yaml` prints it (no app label: the owner names the app)
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {
        "name": "web-7d9f8c-x2x4q", "generateName": "web-7d9f8c-", "namespace": "shop",
        "labels": {"tier": "web", "pod-template-hash": "7d9f8c"}, "ownerReferences": [ref("ReplicaSet", "web-7d9f8c")],
    },
    "spec": {"containers": [{"name": "app", "image": "x", "ports": [{"containerPort": 8080}]}]},
}
CRONJOB = {
    "apiVersion": "batch/v1", "kind": "CronJob",
    "metadata": {"name": "backup", "namespace": "shop", "annotations": {"lanes.io/lane": "nightly"}},
    "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "app", "image": "x"}]}}}}},
}
JOB = {
    "apiVersion": "batch/v1", "kind": "Job",
    "metadata": {
        "name": "backup-29000000", "namespace": "shop", "ownerReferences": [ref("CronJob", "backup", "batch/v1")],
    },
    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "x"}]}}},
}
JOB_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {
        "name": "backup-29000000-abcde", "namespace": "shop", "labels": {"job-name": "backup-29000000"},
        "ownerReferences": [ref("Job", "backup-29000000", "batch/v1")],
    },
    "spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "x"}]},
}


def inject(*objects: dict[str, Any]) -> list[dict[str, Any]]:
    done = lanes("inject", "-f", "-", stdin=yaml.safe_dump_all(objects))
    assert done.returncode == 0, done.stderr
    return documents(done.stdout)


def webhook_config(pod: dict[str, Any], cache: Cache) -> Any:
    return resolve_pod(pod, pod["metadata"]["namespace"], ClusterDefaults(), cache).config


def test_pod_owned_by_a_replicaset_is_named_after_the_deployment() -> None:
    [out] = inject(POD)
    assert config_of(out)["app"] == "web"
    assert out["metadata"]["labels"]["lanes.io/app"] == "web"
    assert webhook_config(POD, Cache(REPLICASET, DEPLOYMENT)).app == "web"


def test_owners_in_the_input_give_their_annotations_like_the_watch_cache() -> None:
    out = inject(DEPLOYMENT, REPLICASET, POD)
    pod_config = config_of(out[2])
    expected = webhook_config(POD, Cache(REPLICASET, DEPLOYMENT))
    assert (pod_config["app"], pod_config["lane"]) == (expected.app, expected.lane) == ("web", "gray")
    replicaset_config = config_of(out[1]["spec"]["template"])
    assert (replicaset_config["app"], replicaset_config["lane"]) == ("web", "gray")


def test_replicaset_on_its_own_is_named_after_its_deployment() -> None:
    [out] = inject(REPLICASET)
    assert config_of(out["spec"]["template"])["app"] == "web"


@pytest.mark.parametrize("with_job", [True, False], ids=["job-in-input", "pod-alone"])
def test_job_pods_and_jobs_owned_by_a_cronjob(with_job: bool) -> None:
    objects = [CRONJOB, JOB, JOB_POD] if with_job else [JOB_POD]
    out = inject(*objects)
    cache = Cache(JOB, CRONJOB) if with_job else Cache()
    expected = webhook_config(JOB_POD, cache)
    pod_config = config_of(out[-1])
    assert (pod_config["app"], pod_config["lane"]) == (expected.app, expected.lane)
    if with_job:
        assert (pod_config["app"], pod_config["lane"]) == ("backup", "nightly")
        assert config_of(out[1]["spec"]["template"])["app"] == "backup"


def test_an_app_label_still_wins() -> None:
    labelled = yaml.safe_load(yaml.safe_dump(POD))
    labelled["metadata"]["labels"]["app.kubernetes.io/name"] = "storefront"
    [out] = inject(labelled)
    assert config_of(out)["app"] == "storefront" == webhook_config(labelled, Cache(REPLICASET, DEPLOYMENT)).app
