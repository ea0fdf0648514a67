"""The Lane reconciler: keeps every namespace's generated routing objects equal to what :func:`render` says.

On the shared Kubernetes access layer: reflectors (list + watch, never polling) for Lanes, pods, Services,
EndpointSlices and each generated kind, and one work queue whose keys are namespaces (see render.py for why the
unit is the namespace). Watch handlers only name the namespace; a worker re-renders it from the caches and
writes the difference:

- server-side apply (field manager ``lanes-controller``) of each rendered object that the live one does not
  already contain (compare.py), so a resync, a relist or our own write coming back through the watch writes
  nothing; ``force`` only for objects already labeled as ours, so a user's object with a colliding name is
  reported, not taken over;
- deletion of labeled objects that are no longer rendered (orphans), with a UID precondition;
- the Lane's status (through the status subresource) when it differs, and Events on transitions;
- a finalizer on every Lane: a Lane being deleted renders nothing, its objects are re-applied without it or
  deleted, and only then is the finalizer removed (owner references are the safety net if the controller is
  gone).

Writes happen only on the leader: every write asks ``write_timeout()`` first, which raises
:class:`~webhook.controller.leader.NotLeader` once the Lease is lost. Health-aware fallback is just this loop
reacting to an EndpointSlice event of a per-lane Service: the re-render drops (or restores) that lane's rules.

A cluster without the Gateway API or Istio CRDs is fine: the APIs are discovered at start (and again every
``discovery_interval``), outputs whose API is missing are reported in the Lanes' status, and their watches start
once the API appears.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from webhook.controller.leader import NotLeader
from webhook.controller.routing import names
from webhook.controller.routing.compare import up_to_date
from webhook.controller.routing.inventory import build_inventory, is_generated, ready_counts
from webhook.controller.routing.render import LaneEvent, RenderOptions, invalid_status, render
from webhook.controller.routing.settings import ReconcilerSettings
from webhook.controller.routing.spec import Lane, LaneError, parse_lane
from webhook.kube.client import JSON, Kube, KubeError, path_segment
from webhook.kube.reflector import Reflector
from webhook.kube.workqueue import WorkQueue, run_workers

log = logging.getLogger("lanes.controller.routing")


@dataclass(frozen=True)
class Resource:
    """A kind the reconciler generates: where its objects live and which outputs need it."""

    kind: str
    group_version: str  # "v1" or "group/version"
    plural: str
    outputs: tuple[str, ...]

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"

    def collection(self, namespace: str | None = None) -> str:
        if namespace is None:
            return f"{self.prefix}/{self.plural}"
        return f"{self.prefix}/namespaces/{path_segment(namespace)}/{self.plural}"

    def path(self, namespace: str, name: str) -> str:
        return f"{self.collection(namespace)}/{path_segment(name)}"


SERVICES = Resource("Service", "v1", "services", ())
HTTPROUTES = Resource(
    "HTTPRoute", names.GATEWAY_VERSION, "httproutes", (names.OUTPUT_GATEWAY, names.OUTPUT_GAMMA, names.OUTPUT_EAST_WEST)
)
DESTINATION_RULES = Resource("DestinationRule", names.ISTIO_VERSION, "destinationrules", (names.OUTPUT_ISTIO,))
VIRTUAL_SERVICES = Resource("VirtualService", names.ISTIO_VERSION, "virtualservices", (names.OUTPUT_ISTIO,))
OPTIONAL = (HTTPROUTES, DESTINATION_RULES, VIRTUAL_SERVICES)
BY_KIND = {r.kind: r for r in (SERVICES, *OPTIONAL)}


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: JSON) -> JSON:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _ns(obj: JSON) -> str:
    return str(_meta(obj).get("namespace") or "")


def _strip(obj: JSON) -> JSON:
    """Generated objects and Lanes as cached: without managedFields (large, never read)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


def project_service(service: JSON) -> JSON:
    """Services: generated ones whole (compared field by field), users' ones reduced to what the inventory reads."""
    if is_generated(service):
        return _strip(service)
    meta = _meta(service)
    spec = service.get("spec") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
            "labels": meta.get("labels") or {},
        },
        "spec": {"selector": spec.get("selector"), "ports": spec.get("ports"), "type": spec.get("type")},
    }


def project_pod(pod: JSON) -> JSON:
    meta = _meta(pod)
    annotations = meta.get("annotations") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
            "labels": {k: v for k, v in (meta.get("labels") or {}).items()},
            "annotations": {k: v for k, v in annotations.items() if k in (names.ANN_STATUS, names.ANN_WARMUP)},
        }
    }


def project_slice(item: JSON) -> JSON:
    """EndpointSlices: only the service and the number of ready endpoints matter."""
    meta = _meta(item)
    ready = sum(
        1
        for e in item.get("endpoints") or ()
        if isinstance(e, dict) and (e.get("conditions") or {}).get("ready") is True
    )
    labels = meta.get("labels") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
            "labels": {names.SERVICE_NAME_LABEL: labels.get(names.SERVICE_NAME_LABEL, "")},
        },
        "addressType": item.get("addressType"),
        "endpoints": [{"conditions": {"ready": True}}] * ready,
    }


def _routing_view(pod: JSON | None) -> tuple[Any, ...] | None:
    """What of a pod the renderer reads: a pod event that changes none of it schedules nothing."""
    if pod is None:
        return None
    meta = _meta(pod)
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return (
        labels.get(names.LABEL_APP),
        labels.get(names.LABEL_LANE),
        tuple(sorted(labels.items())),
        annotations.get(names.ANN_STATUS),
        annotations.get(names.ANN_WARMUP),
    )


def _hash(obj: Any) -> str:
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class WriteCounter:
    """API writes by verb: what the tests and the benchmark count (a no-op resync must add nothing)."""

    applies: int = 0
    deletes: int = 0
    statuses: int = 0
    finalizers: int = 0
    events: int = 0

    @property
    def total(self) -> int:
        return self.applies + self.deletes + self.statuses + self.finalizers + self.events


@dataclass
class _Written:
    """What our last write of one object left: skip re-writing it while the cache has not caught up yet."""

    before: str  # resourceVersion the cache had when we wrote
    after: str  # resourceVersion the write returned
    digest: str


class LaneReconciler:
    """Run with :meth:`start`; stop with :meth:`stop`. See the module docstring."""

    def __init__(
        self,
        kube: Kube,
        *,
        settings: ReconcilerSettings | None = None,
        write_timeout: Callable[[], float] | None = None,
        recorder: Any = None,
        pods: Reflector | None = None,
        field_manager: str = names.FIELD_MANAGER,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings or ReconcilerSettings()
        self.write_timeout = write_timeout or (lambda: 10.0)
        self.recorder = recorder
        self.field_manager = field_manager
        self.on_error = on_error
        self.writes = WriteCounter()
        self.writes_by_namespace: dict[str, WriteCounter] = {}
        self.reconciles = 0
        self.stop_event = threading.Event()
        self.queue: WorkQueue[str] = WorkQueue("lanes-routing", rate=20.0, burst=200)
        self._threads: list[threading.Thread] = []
        self._written: dict[tuple[str, str, str], _Written] = {}
        self._deleted: dict[str, float] = {}  # uid -> when
        self._status_written: dict[str, _Written] = {}
        self._lock = threading.Lock()
        self.available: set[str] = set()
        self.lanes = Reflector(kube, names.LANES_PATH, name="lanes", transform=_strip, on_event=self._on_lane)
        self._own_pods = pods is None
        # (not `pods or ...`: a Reflector's len() is its store size, so an empty shared one is falsy)
        self.pods = (
            pods
            if pods is not None
            else Reflector(
                kube,
                "/api/v1/pods",
                name="lane-pods",
                label_selector=names.LABEL_APP,
                transform=project_pod,
                on_event=self.on_pod,
            )
        )
        self.services = Reflector(
            kube, SERVICES.collection(), name="lane-services", transform=project_service, on_event=self._on_service
        )
        self.slices = Reflector(
            kube,
            "/apis/discovery.k8s.io/v1/endpointslices",
            name="lane-endpointslices",
            label_selector=f"{names.LABEL_GENERATED}=true",
            transform=project_slice,
            on_event=self._on_slice,
        )
        self.generated: dict[str, Reflector] = {}

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._discover()
        for reflector in self._reflectors():
            self._spawn(reflector.name, lambda r=reflector: r.run(self.stop_event))  # type: ignore[misc]
        self._threads.extend(run_workers(self.queue, self.settings.workers, self._handle, name="lanes-routing"))
        self._spawn("routing-resync", self._resync_loop)

    def _reflectors(self) -> list[Reflector]:
        own = [self.lanes, self.services, self.slices]
        if self._own_pods:
            own.append(self.pods)
        return own + list(self.generated.values())

    def stop(self) -> None:
        self.stop_event.set()
        for reflector in self._reflectors():
            if reflector is not self.pods or self._own_pods:
                reflector.close()
        self.queue.shut_down()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _spawn(self, name: str, target: Callable[[], Any]) -> None:
        if self.stop_event.is_set():
            return
        thread = threading.Thread(target=target, name=f"lanes-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def synced(self) -> bool:
        return all(r.synced.is_set() for r in (self.lanes, self.services, self.slices, self.pods)) and all(
            r.synced.is_set() for r in self.generated.values()
        )

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.synced():
                return True
            time.sleep(0.05)
        return self.synced()

    # -- API discovery ---------------------------------------------------------------------------------------------

    def _served(self, resource: Resource) -> bool:
        try:
            listing = self.kube.get(resource.prefix, timeout=(3.0, 5.0))
        except KubeError:
            return False
        return any(r.get("name") == resource.plural for r in listing.get("resources") or ())

    def _discover(self) -> bool:
        """Start watching generated kinds whose API is now served; True when something new appeared."""
        found = False
        for resource in OPTIONAL:
            if resource.kind in self.generated or not self._served(resource):
                continue
            reflector = Reflector(
                self.kube,
                resource.collection(),
                name=f"lane-{resource.plural}",
                label_selector=f"{names.LABEL_GENERATED}=true",
                transform=_strip,
                on_event=self._on_generated,
            )
            self.generated[resource.kind] = reflector
            found = True
            if self._threads:  # already running: start it now
                self._spawn(reflector.name, lambda r=reflector: r.run(self.stop_event))  # type: ignore[misc]
        available: set[str] = set()
        if HTTPROUTES.kind in self.generated:
            available.update(HTTPROUTES.outputs)
        if DESTINATION_RULES.kind in self.generated and VIRTUAL_SERVICES.kind in self.generated:
            available.add(names.OUTPUT_ISTIO)
        self.available = available
        return found

    def _resync_loop(self) -> None:
        last_resync = time.monotonic()
        while not self.stop_event.wait(min(self.settings.discovery_interval, self.settings.resync)):
            if len(self.generated) < len(OPTIONAL) and self._discover():
                log.info("routing API appeared", extra={"outputs": sorted(self.available)})
                self.resync()
            if time.monotonic() - last_resync >= self.settings.resync:
                last_resync = time.monotonic()
                self.resync()

    def resync(self) -> None:
        """Queue every namespace that has Lanes or generated objects."""
        for namespace in self._namespaces():
            self.queue.add(namespace)

    def _namespaces(self) -> set[str]:
        found = {_ns(lane) for lane in self.lanes.items()}
        for reflector in (self.services, *self.generated.values()):
            found.update(_ns(o) for o in reflector.items() if is_generated(o))
        return found

    # -- watch handlers (reflector threads: only name the namespace) -------------------------------------------------

    def _has_lanes(self, namespace: str) -> bool:
        return any(_ns(lane) == namespace for lane in self.lanes.store.values())

    def _on_lane(self, kind: str, lane: JSON, old: JSON | None) -> None:
        self.queue.add(_ns(lane))

    def on_pod(self, kind: str, pod: JSON, old: JSON | None) -> None:
        """Pod events; public so a pod watch shared with other loops (the controller's) can feed it."""
        namespace = _ns(pod)
        if not self._has_lanes(namespace):
            return
        before = _routing_view(old)
        after = None if kind == "DELETED" else _routing_view(pod)
        if before != after and ((before and before[0]) or (after and after[0])):  # only pods with lanes.io/app count
            self.queue.add(namespace)

    def _on_service(self, kind: str, service: JSON, old: JSON | None) -> None:
        namespace = _ns(service)
        if is_generated(service) or is_generated(old or {}):
            if kind == "DELETED":
                self._written.pop((namespace, "Service", str(_meta(service).get("name"))), None)
            self.queue.add(namespace)
            return
        if not self._has_lanes(namespace):
            return
        if (
            kind == "DELETED"
            or old is None
            or (old.get("spec"), _meta(old).get("labels"))
            != (
                service.get("spec"),
                _meta(service).get("labels"),
            )
        ):
            self.queue.add(namespace)

    def _on_slice(self, kind: str, item: JSON, old: JSON | None) -> None:
        if kind != "MODIFIED" or old is None or len(old.get("endpoints") or ()) != len(item.get("endpoints") or ()):
            self.queue.add(_ns(item))

    def _on_generated(self, kind: str, obj: JSON, old: JSON | None) -> None:
        if kind == "DELETED":
            self._forget_written(obj)
        self.queue.add(_ns(obj))

    def _forget_written(self, obj: JSON) -> None:
        """A generated object is gone: the next render must create it again, whatever we wrote before."""
        self._written.pop((_ns(obj), str(obj.get("kind") or ""), str(_meta(obj).get("name"))), None)

    # -- the worker ------------------------------------------------------------------------------------------------

    def _handle(self, namespace: str) -> None:
        if self.stop_event.is_set():
            return
        if not self.synced():
            self.queue.add_after(namespace, 0.2)
            return
        try:
            retry = self.reconcile(namespace)
        except NotLeader:
            return
        except KubeError as exc:
            delay = self.queue.add_rate_limited(namespace, at_least=exc.retry_after or 0.0)
            log.warning(
                "reconciling lanes failed; retrying",
                extra={"namespace": namespace, "error": str(exc), "retry_in": round(delay, 2)},
            )
            if self.on_error:
                self.on_error(namespace)
            return
        self.queue.forget(namespace)
        if retry:
            self.queue.add_after(namespace, retry)

    def _options(self) -> RenderOptions:
        return dataclasses.replace(self.settings.options, available=frozenset(self.available), now=now_rfc3339())

    def _live(self, namespace: str) -> dict[tuple[str, str], JSON]:
        live: dict[tuple[str, str], JSON] = {}
        for obj in self.services.items():
            if _ns(obj) == namespace and is_generated(obj):
                live[("Service", str(_meta(obj).get("name")))] = obj
        for kind, reflector in self.generated.items():
            for obj in reflector.items():
                if _ns(obj) == namespace:
                    live[(kind, str(_meta(obj).get("name")))] = obj
        return live

    def reconcile(self, namespace: str) -> float | None:
        """Bring ``namespace`` to its rendered state; returns seconds after which to look again (or None)."""
        self.reconciles += 1
        raw_lanes = [lane for lane in self.lanes.items() if _ns(lane) == namespace]
        if self._status_pending(raw_lanes):
            return 0.1  # our last status write has not come back through the watch yet
        parsed: list[Lane] = []
        invalid: list[tuple[JSON, str]] = []
        for raw in raw_lanes:
            try:
                parsed.append(parse_lane(raw))
            except LaneError as exc:
                invalid.append((raw, str(exc)))
        for raw in raw_lanes:
            self._ensure_finalizer(raw)
        pods = [p for p in self.pods.items() if _ns(p) == namespace]
        services = [s for s in self.services.items() if _ns(s) == namespace]
        ready = ready_counts(s for s in self.slices.items() if _ns(s) == namespace)
        inventory = build_inventory(namespace, pods, services, ready)
        options = self._options()
        result = render(parsed, inventory, options)
        live = self._live(namespace)
        desired = {(obj["kind"], obj["metadata"]["name"]): obj for obj in result.objects}
        retry: float | None = None
        taken: dict[str, list[str]] = {}  # lane -> objects whose name is held by an object Lanes does not manage
        failed: list[KubeError] = []
        for key, obj in desired.items():
            try:
                outcome = self._apply(namespace, key, obj, live.get(key))
            except KubeError as exc:
                if exc.status in (0, 429):
                    raise  # unreachable or throttled: stop this round, retry the namespace with backoff
                # One object the API server refuses (a full Service IP range, a webhook, a quota) must not hold up
                # every other object and the status: go on, report it, retry the namespace with backoff.
                failed.append(exc)
                outcome = "conflict" if exc.status == 409 else "failed"
                log.warning(
                    "applying a generated object failed",
                    extra={"namespace": namespace, "object": f"{key[0]}/{key[1]}", "error": exc.message},
                )
            if outcome in ("conflict", "failed"):
                retry = self.settings.retry_conflict
                for lane_name in str(obj["metadata"]["annotations"].get(names.ANN_LANES, "")).split(","):
                    taken.setdefault(lane_name, []).append(f"{key[0]}/{key[1]}")
        complete = all(self._delete(key, obj) for key, obj in live.items() if key not in desired)
        by_name = {lane.name: lane for lane in parsed}
        for name, status in result.statuses.items():
            lane = by_name[name]
            if name in taken:
                status = _with_taken(status, taken[name], options.now, lane.status)
            self._write_status(namespace, name, lane.resource_version, lane.status, status)
        for raw, message in invalid:
            meta = _meta(raw)
            status = invalid_status(raw, message, options.now)
            self._write_status(
                namespace,
                str(meta.get("name")),
                str(meta.get("resourceVersion") or ""),
                raw.get("status") or {},
                status,
            )
        self._record(namespace, result.events, by_name)
        if failed:
            raise failed[0]  # statuses are written; the namespace is retried with backoff
        if complete:
            for lane in parsed:
                if lane.deleting and names.FINALIZER in lane.finalizers:
                    self._remove_finalizer(lane)
            for raw, _ in invalid:
                if _meta(raw).get("deletionTimestamp"):
                    self._remove_finalizer_raw(raw)
        return retry

    # -- writes ----------------------------------------------------------------------------------------------------

    def _count(self, namespace: str, verb: str) -> None:
        with self._lock:
            for counter in (self.writes, self.writes_by_namespace.setdefault(namespace, WriteCounter())):
                setattr(counter, verb, getattr(counter, verb) + 1)

    def writes_in(self, namespace: str) -> WriteCounter:
        """API writes this reconciler made in ``namespace`` (a copy)."""
        with self._lock:
            return dataclasses.replace(self.writes_by_namespace.get(namespace) or WriteCounter())

    def _timeout(self) -> tuple[float, float]:
        seconds = self.write_timeout()
        return (min(5.0, seconds), seconds)

    def _apply(self, namespace: str, key: tuple[str, str], obj: JSON, live: JSON | None) -> str:
        if up_to_date(live, obj):
            return "unchanged"
        digest = _hash(obj)
        memo_key = (namespace, *key)
        memo = self._written.get(memo_key)
        live_version = str(_meta(live).get("resourceVersion") or "") if live else ""
        if memo is not None and memo.digest == digest and live_version in (memo.before, memo.after):
            return "pending"  # written already; the watch has not delivered it yet (or it is exactly that)
        resource = BY_KIND[key[0]]
        ours = live is not None  # labeled as generated: only then may a conflict be forced
        try:
            answer = self.kube.patch(
                resource.path(namespace, key[1]),
                obj,
                "apply",
                query={"fieldManager": self.field_manager, "force": ours},
                timeout=self._timeout(),
            )
        except KubeError as exc:
            if exc.status == 409:
                log.warning(
                    "a generated object's name is taken by an object Lanes does not manage",
                    extra={"namespace": namespace, "object": f"{key[0]}/{key[1]}", "error": exc.message},
                )
                return "conflict"
            raise
        self._count(namespace, "applies")
        self._written[memo_key] = _Written(live_version, str(_meta(answer).get("resourceVersion") or ""), digest)
        log.info("applied", extra={"namespace": namespace, "object": f"{key[0]}/{key[1]}"})
        return "applied"

    def _delete(self, key: tuple[str, str], obj: JSON) -> bool:
        meta = _meta(obj)
        uid = str(meta.get("uid") or "")
        if uid in self._deleted:
            return True
        resource = BY_KIND[key[0]]
        namespace = str(meta.get("namespace"))
        try:
            self.kube.delete(
                resource.path(namespace, key[1]),
                {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}},
                timeout=self._timeout(),
            )
        except KubeError as exc:
            if exc.status not in (404, 409):
                raise
        self._count(namespace, "deletes")
        self._deleted[uid] = time.monotonic()
        if len(self._deleted) > 10000:
            cutoff = time.monotonic() - 600
            self._deleted = {u: t for u, t in self._deleted.items() if t > cutoff}
        log.info("deleted", extra={"namespace": namespace, "object": f"{key[0]}/{key[1]}"})
        return True

    def _status_pending(self, raw_lanes: Iterable[JSON]) -> bool:
        for raw in raw_lanes:
            meta = _meta(raw)
            memo = self._status_written.get(f"{meta.get('namespace')}/{meta.get('name')}")
            if memo is not None and str(meta.get("resourceVersion") or "") == memo.before:
                return True
        return False

    def _write_status(self, namespace: str, name: str, version: str, live: Any, status: JSON) -> None:
        if live == status:
            return
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        }
        path = f"/apis/{names.API_VERSION}/namespaces/{path_segment(namespace)}/{names.PLURAL}/{path_segment(name)}"
        try:
            answer = self.kube.patch(
                f"{path}/status",
                body,
                "apply",
                query={"fieldManager": self.field_manager, "force": True},
                timeout=self._timeout(),
            )
        except KubeError as exc:
            if exc.status == 404:
                return
            raise
        self._count(namespace, "statuses")
        after = str(_meta(answer).get("resourceVersion") or "")
        if after and after != version:  # a no-op answer (same version) never comes back through the watch
            self._status_written[f"{namespace}/{name}"] = _Written(version, after, _hash(status))

    def _ensure_finalizer(self, raw: JSON) -> None:
        meta = _meta(raw)
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp") or names.FINALIZER in finalizers:
            return
        self._patch_finalizers(raw, [*finalizers, names.FINALIZER])

    def _remove_finalizer(self, lane: Lane) -> None:
        raw = self.lanes.get(lane.key)
        if raw is not None:
            self._remove_finalizer_raw(raw)

    def _remove_finalizer_raw(self, raw: JSON) -> None:
        finalizers = [f for f in _meta(raw).get("finalizers") or [] if f != names.FINALIZER]
        if len(finalizers) != len(_meta(raw).get("finalizers") or []):
            self._patch_finalizers(raw, finalizers)

    def _patch_finalizers(self, raw: JSON, finalizers: list[str]) -> None:
        meta = _meta(raw)
        path = (
            f"/apis/{names.API_VERSION}/namespaces/{path_segment(str(meta.get('namespace')))}/{names.PLURAL}/"
            f"{path_segment(str(meta.get('name')))}"
        )
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}
        try:
            self.kube.patch(path, body, "merge", timeout=self._timeout())
        except KubeError as exc:
            if exc.status in (404, 409):  # gone, or changed since: the watch brings the new version
                return
            raise
        self._count(str(meta.get("namespace")), "finalizers")

    def _record(self, namespace: str, events: Iterable[LaneEvent], lanes: dict[str, Lane]) -> None:
        if self.recorder is None:
            return
        for event in events:
            lane = lanes.get(event.lane)
            if lane is None:
                continue
            involved = {
                "apiVersion": names.API_VERSION,
                "kind": names.KIND,
                "name": lane.name,
                "namespace": namespace,
                "uid": lane.uid,
                "resourceVersion": lane.resource_version,
            }
            name = f"{lane.name}.{event.reason.lower()}-{_hash([lane.resource_version, event.message])[:10]}"
            outcome = self.recorder.record(
                involved, name, event.reason, event.message, warning=event.warning, timeout=self.write_timeout
            )
            if outcome == "written":
                self._count(namespace, "events")
            log.info("lane event", extra={"lane": lane.key, "reason": event.reason, "detail": event.message})


def _with_taken(status: JSON, objects: list[str], now: str, live: Any) -> JSON:
    """``status`` with Degraded=True naming the generated objects whose names other objects hold (the transition
    time kept from the live status while it already says so)."""
    was = next(
        (c for c in (live or {}).get("conditions") or () if c.get("type") == "Degraded" and c.get("status") == "True"),
        None,
    )
    message = (
        "not generated (the name is taken by an object Lanes does not manage, or the API server refused it: see "
        f"the controller log): {', '.join(sorted(objects))}"
    )
    conditions = []
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Degraded":
            previous = condition.get("message") if condition.get("status") == "True" else ""
            since = condition["lastTransitionTime"] if condition.get("status") == "True" else now
            if was is not None and was.get("lastTransitionTime"):
                since = was["lastTransitionTime"]
            condition = {
                **condition,
                "status": "True",
                "reason": "NameTaken",
                "message": "; ".join(m for m in (message, previous) if m)[:1024],
                "lastTransitionTime": since,
            }
        conditions.append(condition)
    return {**status, "conditions": conditions}


def reconciler_keys(objects: Iterable[JSON]) -> list[Hashable]:
    """(kind, namespace, name) of objects: handy for tests and ``lanes lane describe``."""
    return [(o.get("kind"), _ns(o), _meta(o).get("name")) for o in objects]
