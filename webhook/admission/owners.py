"""Watch cache of namespaces and workloads: the OwnerLookup the core reads during admission.

Settings resolution needs the pod's owning workload (Pod -> ReplicaSet -> Deployment, Pod -> Job -> CronJob,
StatefulSet, DaemonSet) and its namespace, but an admission call must never wait on the API server. So a
reflector per resource lists and then watches it cluster-wide in a background thread, and lookups are plain
dict reads.

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

import contextlib
import logging
import random
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from kubernetes.client import ApiClient

from webhook.admission.metrics import CacheStats

log = logging.getLogger("lanes.owners")

ANNOTATION_PREFIX = "lanes.io/"
LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
WATCH_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


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


class _Gone(Exception):
    """The resourceVersion we hold is too old (HTTP 410): only a relist helps."""


class _ApiError(Exception):
    pass


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


class _Reflector:
    """List + watch of one resource, keeping ``store`` (a dict replaced whole on every relist)."""

    def __init__(self, cache: WatchCache, resource: WatchedResource) -> None:
        self.cache = cache
        self.resource = resource
        self.namespaced = resource is not NAMESPACES
        self.store: dict[Any, dict[str, Any]] = {}
        self.synced = threading.Event()
        self.relists = 0
        self.watch_errors = 0
        self._response: Any = None
        self.thread = threading.Thread(target=self.run, name=f"lanes-watch-{resource.kind}", daemon=True)

    # keys and entries ----------

    def _key_entry(self, obj: Any) -> tuple[Any, dict[str, Any]] | None:
        metadata = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(metadata, dict) or not metadata.get("name"):
            return None
        if self.namespaced:
            return (metadata.get("namespace", ""), metadata["name"]), workload_entry(metadata)
        return metadata["name"], namespace_entry(metadata)

    # HTTP ----------

    def _get(self, query: list[tuple[str, str]], accept: str, read_timeout: float) -> Any:
        api: ApiClient = self.cache.api_client
        method, url, headers, _, _ = api.param_serialize(
            "GET",
            self.resource.path,
            query_params=query,
            header_params={"Accept": accept},
            auth_settings=["BearerToken"],
        )
        response = api.call_api(method, url, header_params=headers, _request_timeout=(10, read_timeout)).response
        if response.status == 410:
            response.release_conn()
            raise _Gone()
        if response.status != 200:
            body = response.data[:300].decode("utf-8", "replace")
            response.release_conn()
            raise _ApiError(f"GET {self.resource.path}: HTTP {response.status}: {body}")
        return response

    # list ----------

    def list(self) -> str:
        """Replace the store with a fresh consistent list; returns the list's resourceVersion."""
        store: dict[Any, dict[str, Any]] = {}
        token = ""
        resource_version = ""
        while True:
            query = [("limit", str(self.cache.page_size))]
            if token:
                query.append(("continue", token))
            response = self._get(query, LIST_ACCEPT, 60)
            page = orjson.loads(response.data)
            response.release_conn()
            for item in page.get("items") or ():
                key_entry = self._key_entry(item)
                if key_entry is not None:
                    store[key_entry[0]] = key_entry[1]
            meta = page.get("metadata") or {}
            resource_version = meta.get("resourceVersion", "")
            token = meta.get("continue") or ""
            if not token:
                break
        self.store = store
        self.relists += 1
        self.synced.set()
        log.debug(
            "listed",
            extra={"kind": self.resource.kind, "objects": len(store), "resource_version": resource_version},
        )
        return resource_version

    # watch ----------

    def watch(self, resource_version: str) -> str:
        """Apply watch events until the server ends the watch; returns the last seen resourceVersion."""
        timeout = int(self.cache.watch_timeout * (1 + random.random()))
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(timeout)),
        ]
        response = self._get(query, WATCH_ACCEPT, timeout + 30)
        self._response = response
        try:
            for line in _lines(response):
                if self.cache.stopping.is_set():
                    break
                resource_version = self._apply(orjson.loads(line), resource_version)
                self.cache._backoff_reset(self)
        finally:
            self._response = None
            try:  # a watch connection is not reused (one new connection per 5-10 minutes is nothing)
                response.close()
                response.release_conn()
            except Exception:
                pass
        return resource_version

    def _apply(self, event: dict[str, Any], resource_version: str) -> str:
        kind = event.get("type")
        obj = event.get("object")
        if kind == "ERROR":
            code = obj.get("code") if isinstance(obj, dict) else None
            if code == 410:
                raise _Gone()
            message = obj.get("message") if isinstance(obj, dict) else obj
            raise _ApiError(f"watch {self.resource.path}: error event {code}: {message}")
        metadata = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(metadata, dict) and metadata.get("resourceVersion"):
            resource_version = metadata["resourceVersion"]
        if kind in ("ADDED", "MODIFIED"):
            key_entry = self._key_entry(obj)
            if key_entry is not None:
                self.store[key_entry[0]] = key_entry[1]
        elif kind == "DELETED":
            key_entry = self._key_entry(obj)
            if key_entry is not None:
                self.store.pop(key_entry[0], None)
        return resource_version

    def interrupt(self) -> None:
        """Unblock a watch read so the thread notices ``stopping`` (shutting the socket down, as client-go's
        Watch.stop does: closing it would wait for the SSL lock the blocked read holds)."""
        response = self._response
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # loop ----------

    def run(self) -> None:
        resource_version = ""
        need_list = True
        stopping = self.cache.stopping
        while not stopping.is_set():
            try:
                if need_list:
                    resource_version = self.list()
                    need_list = False
                    self.cache._backoff_reset(self)
                resource_version = self.watch(resource_version)
            except _Gone:
                log.info("resourceVersion expired; relisting", extra={"kind": self.resource.kind})
                need_list = True
            except Exception as exc:
                if stopping.is_set():
                    break
                self.watch_errors += 1
                delay = self.cache._backoff_next(self)
                log.warning(
                    "list/watch failed; retrying in %.1fs: %s",
                    delay,
                    exc,
                    extra={"kind": self.resource.kind, "error": type(exc).__name__},
                )
                stopping.wait(delay)


def _lines(response: Any) -> Iterator[bytes]:
    """Newline-delimited JSON events from a streaming urllib3 response (linear in the stream's size, also
    when one chunk holds thousands of events, as after a reconnect)."""
    buffer = bytearray()
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        start = 0
        while (newline := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start:newline])
            start = newline + 1
            if line.strip():
                yield line
        del buffer[:start]
    if buffer.strip():
        yield bytes(buffer)


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
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stopping = threading.Event()
        self._namespaces = _Reflector(self, NAMESPACES)
        self._workloads = {r.kind: _Reflector(self, r) for r in WORKLOADS}
        self._reflectors = [self._namespaces, *self._workloads.values()]
        self._backoff: dict[str, float] = {}

    # OwnerLookup ----------

    def namespace_metadata(self, name: str) -> dict[str, Any] | None:
        return self._namespaces.store.get(name)

    def workload_metadata(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        reflector = self._workloads.get(kind)
        if reflector is None:
            return None
        return reflector.store.get((namespace, name))

    # lifecycle ----------

    def start(self) -> None:
        for reflector in self._reflectors:
            reflector.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        for reflector in self._reflectors:
            reflector.interrupt()
        for reflector in self._reflectors:
            if reflector.thread.is_alive():
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
            r.resource.kind: CacheStats(objects=len(r.store), relists=r.relists, watch_errors=r.watch_errors)
            for r in self._reflectors
        }

    # backoff ----------

    def _backoff_next(self, reflector: _Reflector) -> float:
        kind = reflector.resource.kind
        current = self._backoff.get(kind, self.backoff_initial / 2) * 2
        current = min(current, self.backoff_max)
        self._backoff[kind] = current
        return current * random.uniform(0.8, 1.2)

    def _backoff_reset(self, reflector: _Reflector) -> None:
        self._backoff.pop(reflector.resource.kind, None)
