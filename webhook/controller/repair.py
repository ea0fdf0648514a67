"""Repair: find pods in enabled namespaces that were admitted without injection, report them, optionally evict.

Under ``failurePolicy: Ignore`` a webhook outage lets pods through unchanged: no readiness gate, no drain, no
lane label. Each such pod is reported once (a Warning Event on the pod, one JSON log line, the
``lanes_repair_uninjected_pods`` gauge; ``lanes doctor`` lists them too). With ``repair: evict`` it is then
evicted through the Eviction API, so PodDisruptionBudgets apply (a 429 is retried later) and its controller
recreates it, this time injected.

Evicting is rate limited (token bucket) and careful about owners: after evicting a pod, the next pod of the same
owner waits until the replacement appears (or ``replacement_timeout`` passes). If the replacement is again
uninjected the webhook is evidently still unreachable, and that owner is held back with an exponentially
growing pause instead of being evicted in a loop. Bare pods and Job pods are only reported: nothing would
recreate them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from helper.backoff import PLUS_MINUS_20, Backoff
from webhook.controller import pods as podfacts
from webhook.controller.events import EventRecorder
from webhook.controller.leader import NOT_LEADER_RETRY, NotLeader
from webhook.controller.metrics import ControllerMetrics
from webhook.controller.settings import RepairMode, RepairSettings
from webhook.kube.client import JSON, Kube, KubeError, path_segment
from webhook.kube.ratelimit import TokenBucket
from webhook.kube.reflector import Reflector
from webhook.kube.workqueue import WorkQueue, run_workers

log = logging.getLogger("lanes.controller.repair")

REASON_UNINJECTED = "NotInjected"
REASON_EVICTED = "RepairEvicted"
MAX_OWNER_HOLD = 3600.0

REPORT = "report"
EVICT = "evict"
Key = tuple[str, str]
"""``(REPORT or EVICT, pod UID)``: the two steps of one pod are queued, delayed and retried independently."""


@dataclass
class _OwnerState:
    """Evictions of one owner's pods (a ReplicaSet, StatefulSet, ...)."""

    evicted_at: float = 0.0  # wall clock of the last eviction
    awaiting_until: float = 0.0  # monotonic: until then, wait for the replacement before the next eviction
    hold_until: float = 0.0  # monotonic: replacements came back uninjected; pause
    failures: int = 0


def uninjected_message(evict: bool) -> str:
    action = (
        "Lanes will evict it so that its controller recreates it injected"
        if evict
        else "recreate it (e.g. kubectl rollout restart) so it is injected"
    )
    return (
        "admitted without Lanes injection (webhook unreachable under failurePolicy Ignore, or created before "
        f"the namespace was enabled): no readiness gate, drain or lane label; {action}"
    )


def _retry_backoff() -> Backoff:
    return Backoff(first=1.0, cap=60.0, jitter=PLUS_MINUS_20)


class Repair:
    """The repair loop of one leader term; fed by the pod and namespace watches."""

    def __init__(
        self,
        kube: Kube,
        pods: Reflector,
        namespace_enabled: Callable[[str], bool],
        write_timeout: Callable[[], float],
        metrics: ControllerMetrics,
        recorder: EventRecorder,
        *,
        own_namespace: str,
        settings: RepairSettings,
    ) -> None:
        self.kube = kube
        self.pods = pods
        self.namespace_enabled = namespace_enabled
        self.write_timeout = write_timeout
        self.metrics = metrics
        self.recorder = recorder
        self.own_namespace = own_namespace
        self.settings = settings
        self.evict = settings.mode is RepairMode.EVICT
        self.bucket = TokenBucket(settings.rate, settings.burst)
        self.queue: WorkQueue[Key] = WorkQueue("repair", backoff=_retry_backoff)
        self._lock = threading.Lock()
        self._uninjected: dict[str, str] = {}  # uid -> namespace/name
        self._reported: set[str] = set()
        self._owners: dict[str, _OwnerState] = {}
        self._stopped = False
        run_workers(self.queue, 2, self._sync)

    # -- watch handlers (reflector thread) ---------------------------------------------------------------------

    def on_pod(self, kind: str, pod: JSON, old: JSON | None) -> None:
        with self._lock:
            self._evaluate(kind, pod)

    def on_namespace(self, kind: str, namespace: JSON, old: JSON | None) -> None:
        if kind == "MODIFIED":
            return
        name = (namespace.get("metadata") or {}).get("name")
        with self._lock:
            for pod in podfacts.in_namespace(self.pods.items(), name):
                self._evaluate("MODIFIED", pod)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self.queue.shut_down()

    # -- decisions (under the lock) ----------------------------------------------------------------------------

    def _evaluate(self, kind: str, pod: JSON) -> None:
        uid = podfacts.uid_of(pod)
        if self._stopped or not uid:
            return
        enabled = self.namespace_enabled(podfacts.namespace_of(pod))
        if kind != "DELETED" and enabled:
            self._note_replacement(pod)
        if kind == "DELETED" or not enabled or not podfacts.needs_repair(pod, self.own_namespace):
            if self._uninjected.pop(uid, None) is not None:  # a key still queued finds nothing to repair
                self.metrics.repair_uninjected.set(len(self._uninjected))
            if kind == "DELETED":
                self._reported.discard(uid)
                self.queue.forget((REPORT, uid))
                self.queue.forget((EVICT, uid))
            return
        key = podfacts.describe(pod)
        if uid not in self._uninjected:
            self._uninjected[uid] = key
            self.metrics.repair_uninjected.set(len(self._uninjected))
            if uid not in self._reported:
                self.queue.add((REPORT, uid))
            if self.evict and podfacts.recreated_by_owner(pod):
                self.queue.add((EVICT, uid))

    def _note_replacement(self, pod: JSON) -> None:
        """A pod of an owner we evicted from appeared: was it injected this time?"""
        owner = podfacts.controller_owner(pod)
        state = self._owners.get(str(owner.get("uid"))) if owner else None
        if state is None or not state.evicted_at:
            return
        created = podfacts.parse_time(podfacts.meta(pod).get("creationTimestamp"))
        if created is None or created < int(state.evicted_at):
            return
        if state.awaiting_until == 0.0 and state.failures == 0:
            return  # already judged
        if podfacts.is_injected(pod):
            state.failures, state.hold_until, state.awaiting_until = 0, 0.0, 0.0
        elif podfacts.needs_repair(pod, self.own_namespace) and state.awaiting_until:
            state.failures += 1
            hold = min(MAX_OWNER_HOLD, self.settings.retry_after * 2 ** (state.failures - 1))
            state.hold_until, state.awaiting_until = time.monotonic() + hold, 0.0
            log.warning(
                "replacement pod is uninjected too: webhook still unavailable; holding evictions for this owner",
                extra={"owner": f"{owner.get('kind')}/{owner.get('name')}" if owner else None, "hold": hold},
            )

    def _retry_as_leader(self, key: Key) -> None:
        """A write held back while leadership was unconfirmed: try again shortly (see NOT_LEADER_RETRY); an
        eviction that was due took its token from the bucket, so it goes back in line like any other."""
        with self._lock:
            if not self._stopped and key[1] in self._uninjected:
                self.queue.add_after(key, NOT_LEADER_RETRY)

    def _current(self, uid: str) -> JSON | None:
        """The pod from the watch cache if it still needs repair."""
        key = self._uninjected.get(uid)
        pod = self.pods.get(key) if key else None
        if pod is None or podfacts.uid_of(pod) != uid or not podfacts.needs_repair(pod, self.own_namespace):
            return None
        return pod

    # -- the steps (worker threads) ----------------------------------------------------------------------------

    def _sync(self, key: Key) -> None:
        step, uid = key
        if step == REPORT:
            self._report(uid)
        else:
            self._evict(uid)

    # -- report (worker thread) --------------------------------------------------------------------------------

    def _report(self, uid: str) -> None:
        with self._lock:
            pod = self._current(uid)
            if pod is None or self._stopped or uid in self._reported:
                return
        try:
            timeout = self.write_timeout()
        except NotLeader:
            self._retry_as_leader((REPORT, uid))
            return
        result = self.recorder.pod_event(
            pod, REASON_UNINJECTED, uninjected_message(self.evict), warning=True, timeout=lambda: timeout
        )
        with self._lock:
            if result == "failed":
                if not self._stopped:
                    self.queue.add_rate_limited((REPORT, uid))
                return
            self._reported.add(uid)
            self.queue.forget((REPORT, uid))
        owner = podfacts.controller_owner(pod)
        log.warning(
            "pod admitted without injection",
            extra={
                "pod": podfacts.describe(pod),
                "uid": uid,
                "owner": f"{owner.get('kind')}/{owner.get('name')}" if owner else None,
                "repair": "evict" if self.evict and podfacts.recreated_by_owner(pod) else "report",
                "event": result,
            },
        )

    # -- evict (worker thread) ---------------------------------------------------------------------------------

    def _evict(self, uid: str) -> None:
        key: Key = (EVICT, uid)
        with self._lock:
            pod = self._current(uid)
            if pod is None or self._stopped:
                return
            now = time.monotonic()
            if ((pod.get("status") or {}).get("phase") or "Pending") == "Pending":
                # The Eviction API skips PodDisruptionBudgets for Pending pods; wait until it runs, so every
                # eviction Lanes makes is one the budget had a say in.
                self.queue.add_after(key, min(self.settings.retry_after, 2.0))
                return
            owner = podfacts.controller_owner(pod) or {}
            state = self._owners.setdefault(str(owner.get("uid")), _OwnerState())
            wait = max(state.hold_until - now, min(state.awaiting_until - now, 2.0), 0.0)
            if wait > 0:
                self.queue.add_after(key, wait)
                return
            token_wait = self.bucket.take()
            if token_wait > 0:
                self.queue.add_after(key, token_wait)
                return
        try:
            timeout = self.write_timeout()
        except NotLeader:
            self._retry_as_leader(key)
            return
        meta = podfacts.meta(pod)
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
            "deleteOptions": {"preconditions": {"uid": uid}},
        }
        path = f"/api/v1/namespaces/{path_segment(namespace)}/pods/{path_segment(name)}/eviction"
        try:
            self.kube.create(path, body, timeout=(min(5.0, timeout), timeout))
        except KubeError as exc:
            self._eviction_failed(uid, key, pod, exc)
            return
        self.metrics.repair_evictions.labels("evicted").inc()
        with self._lock:
            state.evicted_at = time.time()
            state.awaiting_until = time.monotonic() + self.settings.replacement_timeout
            self.queue.forget(key)
        log.warning("evicted uninjected pod", extra={"pod": podfacts.describe(pod), "uid": uid})
        self.recorder.pod_event(
            pod,
            REASON_EVICTED,
            "evicted by Lanes repair: it was admitted without injection; its controller recreates it",
            warning=False,
            timeout=lambda: timeout,
        )

    def _eviction_failed(self, uid: str, key: Key, pod: JSON, exc: KubeError) -> None:
        if exc.status in (404, 409):
            self.metrics.repair_evictions.labels("gone").inc()
            return
        if exc.status == 429:
            self.metrics.repair_evictions.labels("blocked").inc()
            wait = max(self.settings.retry_after, exc.retry_after or 0.0)
            log.info(
                "eviction refused (PodDisruptionBudget); retrying later",
                extra={"pod": podfacts.describe(pod), "retry_in": wait, "error": exc.message},
            )
            with self._lock:
                if not self._stopped:
                    self.queue.add_after(key, wait)
            return
        self.metrics.repair_evictions.labels("error").inc()
        log.warning("eviction failed; retrying", extra={"pod": podfacts.describe(pod), "error": str(exc)})
        with self._lock:
            if not self._stopped:
                self.queue.add_rate_limited(key, at_least=self.settings.retry_after / 4)
