"""Watch cache of namespaces and workloads: the OwnerLookup the core reads during admission.

Settings resolution needs the pod's owning workload (Pod -> ReplicaSet -> Deployment, Pod -> Job -> CronJob,
StatefulSet, DaemonSet) and its namespace, but an admission call must never wait on the API server. So a
reflector per resource (``webhook.kube.reflector``) lists and then watches it cluster-wide in a background
thread, and lookups are plain dict reads.

Memory and CPU: requests ask for metadata only (``Accept: application/json;as=PartialObjectMetadataList;
g=meta.k8s.io;v=v1``), so the API server sends no ReplicaSet pod templates and no status. Of that, a
workload keeps its name, its ``lanes.io/*`` annotations and its ownerReferences (kind, name, apiVersion,
controller); a namespace keeps its labels and ``lanes.io/*`` annotations. Entries are replaced, never
mutated, so a reader always sees a consistent entry; callers must treat returned dicts as read-only.

Consistency: the initial list is paginated and consistent (``resourceVersion`` unset); the watch resumes from
the list's resourceVersion with bookmarks on. ``410 Gone`` (as a status or an ERROR event) triggers a relist,
which replaces that resource's whole map, so objects deleted while disconnected disappear. Other failures (API
server restart, network) back off exponentially (0.5 s up to 30 s, jittered) and resume the watch from the
last seen resourceVersion. Watches are closed by the server after ``timeoutSeconds`` (randomized 5-10
minutes, like client-go) and reopened at once.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient

from helper.backoff import PLUS_MINUS_20, Backoff
from webhook.admission.metrics import CacheStats
from webhook.kube.client import JSON, Kube
from webhook.kube.reflector import Reflector

log = logging.getLogger("lanes.owners")

ANNOTATION_PREFIX = "lanes.io/"

#: (connect, read) seconds for a list page: a page of 500 ReplicaSets' metadata from a busy API server.
LIST_TIMEOUT = (10.0, 60.0)


@dataclass(frozen=True)
class WatchedResource:
    kind: str
    path: str  # the cluster-wide collection URL path


NAMESPACES = WatchedResource("Namespace", "/api/v1/namespaces")
WORKLOADS = (
    WatchedResource("ReplicaSet", "/apis/apps/v1/replicasets"),
    WatchedResource("Deployment", "/apis/apps/v1/deployments"),
    WatchedResource("StatefulSet", "/apis/apps/v1/statefulsets"),
    WatchedResource("DaemonSet", "/apis/apps/v1/daemonsets"),
    WatchedResource("Job", "/apis/batch/v1/jobs"),
    WatchedResource("CronJob", "/apis/batch/v1/cronjobs"),
)


def _lanes_annotations(metadata: dict[str, Any]) -> dict[str, str]:
    annotations = metadata.get("annotations") or {}
    return {k: v for k, v in annotations.items() if k.startswith(ANNOTATION_PREFIX)}


def namespace_entry(metadata: dict[str, Any]) -> dict[str, Any]:
    """What a namespace contributes to resolution: its labels and its ``lanes.io/*`` annotations."""
    return {"labels": dict(metadata.get("labels") or {}), "annotations": _lanes_annotations(metadata)}


def workload_entry(metadata: dict[str, Any]) -> dict[str, Any]:
    """What a workload contributes: name, ``lanes.io/*`` annotations, and slimmed ownerReferences."""
    refs = [
        {
            "apiVersion": sys.intern(str(ref.get("apiVersion", ""))),
            "kind": sys.intern(str(ref.get("kind", ""))),
            "name": ref.get("name", ""),
            "controller": bool(ref.get("controller")),
        }
        for ref in metadata.get("ownerReferences") or ()
    ]
    return {
        "name": metadata.get("name", ""),
        "annotations": _lanes_annotations(metadata),
        "ownerReferences": refs,
    }


def _metadata(obj: JSON) -> dict[str, Any] | None:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) and metadata.get("name") else None


def _namespace_key(obj: JSON) -> Hashable | None:
    metadata = _metadata(obj)
    return None if metadata is None else metadata["name"]


def _workload_key(obj: JSON) -> Hashable | None:
    metadata = _metadata(obj)
    return None if metadata is None else (metadata.get("namespace", ""), metadata["name"])


class WatchCache:
    """In-memory, thread-safe view of namespaces and workloads; implements ``webhook.injection.admit.OwnerLookup``.

    ``start()`` launches one daemon thread per resource; ``is_synced()`` turns true once each has completed
    its initial list (the app's /readyz waits for it). Lookups before that return None, like a missing object.
    """

    def __init__(
        self,
        api_client: ApiClient,
        *,
        watch_timeout: float = 300.0,
        page_size: int = 500,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.api_client = api_client
        self.kube = Kube(api_client)
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stopping = threading.Event()
        self._namespaces = self._reflector(NAMESPACES)
        self._workloads = {r.kind: self._reflector(r) for r in WORKLOADS}
        self._reflectors = [self._namespaces, *self._workloads.values()]

    def _reflector(self, resource: WatchedResource) -> Reflector:
        """A metadata-only reflector of one resource, storing just its resolution entries."""
        namespaced = resource is not NAMESPACES
        entry = workload_entry if namespaced else namespace_entry
        return Reflector(
            self.kube,
            resource.path,
            name=resource.kind,
            metadata_only=True,
            key=_workload_key if namespaced else _namespace_key,
            transform=lambda obj: entry(obj["metadata"]),
            watch_timeout=self.watch_timeout,
            page_size=self.page_size,
            backoff=Backoff(first=self.backoff_initial, cap=self.backoff_max, jitter=PLUS_MINUS_20),
            request_timeout=LIST_TIMEOUT,
            logger=log,
        )

    # OwnerLookup ----------

    def namespace_metadata(self, name: str) -> dict[str, Any] | None:
        return self._namespaces.get(name)

    def workload_metadata(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        reflector = self._workloads.get(kind)
        if reflector is None:
            return None
        return reflector.get((namespace, name))

    # lifecycle ----------

    def start(self) -> None:
        for reflector in self._reflectors:
            reflector.start(self.stopping)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        for reflector in self._reflectors:
            reflector.close()
        for reflector in self._reflectors:
            if reflector.thread is not None and reflector.thread.is_alive():
                reflector.thread.join(timeout)

    def is_synced(self) -> bool:
        return all(r.synced.is_set() for r in self._reflectors)

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until every resource has been listed once (or ``timeout``); True when synced."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for reflector in self._reflectors:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not reflector.synced.wait(remaining):
                return False
        return True

    def stats(self) -> dict[str, CacheStats]:
        return {
            r.name: CacheStats(objects=len(r), relists=r.relists, watch_errors=r.watch_errors) for r in self._reflectors
        }
