"""Delayed registration: set the ``lanes.io/registered`` condition once ``ContainersReady`` has held for the pod's
register delay.

The Deployment controller counts a pod as available only when it is Ready, and with the readiness gate the
kubelet reports Ready only once this condition is True: so a rollout waits here, pod by pod, and a new pod
receives traffic only after its containers (including the agent, whose readiness covers warm-up) have been
ready for the register delay.

Each pending pod is a key of a work queue (``webhook.kube.workqueue``), due ``register-delay`` after the watch
shows ``ContainersReady``: one heap of timers for possibly thousands of pods, without polling and without a thread
per pod. A worker (at most ``concurrency`` at once, which also bounds the PATCHes in flight) re-checks the pod in
the watch cache and sends one strategic-merge PATCH of its ``status`` subresource; a failed PATCH is retried with
the queue's per-pod backoff. The patch carries the pod's UID, so it fails with 409 instead of touching a different
pod that reuses the name (StatefulSets do). A pod whose containers later become unready keeps the condition:
registration happens once per pod start. A pod whose containers become unready *before* the delay has passed
starts over.

When ``ContainersReady`` was seen flipping to True by this watch, the delay counts from that moment (the
timestamps in the pod have one-second resolution); a pod that was already ready when this leader started
counts from the condition's ``lastTransitionTime`` (its latest possible moment: the stamp's fractions are cut off),
so a failover neither restarts nor skips the delay.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from helper.backoff import PLUS_MINUS_20, Backoff
from webhook.contract import names
from webhook.contract.durations import format_duration
from webhook.controller import pods as podfacts
from webhook.controller.leader import NOT_LEADER_RETRY, NotLeader
from webhook.controller.metrics import ControllerMetrics
from webhook.kube.client import JSON, Kube, KubeError, path_segment
from webhook.kube.reflector import Reflector
from webhook.kube.workqueue import WorkQueue, run_workers

log = logging.getLogger("lanes.controller.gate")

CONTAINERS_READY = "ContainersReady"
REASON = "RegisterDelayElapsed"


@dataclass
class _Pending:
    """What the gate knows about one pod it has not registered yet."""

    key: str
    seen_unready: bool = False
    ready_since_ltt: str | None = None  # the ContainersReady.lastTransitionTime the delay counts from
    ready_since: float | None = None  # monotonic
    delay: float = 0.0


def _patch_backoff() -> Backoff:
    return Backoff(first=0.5, cap=10.0, jitter=PLUS_MINUS_20)


def status_patch(uid: str, delay: float, now: dt.datetime | None = None) -> JSON:
    """The strategic-merge patch for ``pods/status`` (conditions merge by ``type``; the UID is a precondition)."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return {
        "metadata": {"uid": uid},
        "status": {
            "conditions": [
                {
                    "type": names.CONDITION_REGISTERED,
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "reason": REASON,
                    "message": f"containers ready for the register delay ({format_duration(delay)})",
                }
            ]
        },
    }


class Gate:
    """The readiness-gate loop of one leader term; fed by the pod and namespace watches."""

    def __init__(
        self,
        kube: Kube,
        pods: Reflector,
        namespace_enabled: Callable[[str], bool],
        write_timeout: Callable[[], float],
        metrics: ControllerMetrics,
        *,
        default_delay: float = 0.0,
        concurrency: int = 8,
    ) -> None:
        self.kube = kube
        self.pods = pods
        self.namespace_enabled = namespace_enabled
        self.write_timeout = write_timeout
        self.metrics = metrics
        self.default_delay = default_delay
        self.queue: WorkQueue[str] = WorkQueue("gate", backoff=_patch_backoff)  # keys: pod UIDs
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._done: set[str] = set()  # registered (by us or seen True): never PATCHed again
        self._stopped = False
        run_workers(self.queue, concurrency, self._sync)

    # -- watch handlers (reflector thread) -------------------------------------------------------------------

    def on_pod(self, kind: str, pod: JSON, old: JSON | None) -> None:
        uid = podfacts.uid_of(pod)
        if not uid:
            return
        if kind == "DELETED":
            with self._lock:
                self._done.discard(uid)
                self._forget(uid)
            return
        with self._lock:
            self._evaluate(uid, pod)

    def on_namespace(self, kind: str, namespace: JSON, old: JSON | None) -> None:
        """A namespace entered or left the enabled set: re-evaluate its pods."""
        if kind == "MODIFIED":
            return
        name = (namespace.get("metadata") or {}).get("name")
        with self._lock:
            for pod in podfacts.in_namespace(self.pods.items(), name):
                self._evaluate(podfacts.uid_of(pod), pod)

    def retry_now(self) -> None:
        """The API server is reachable again: PATCHes waiting in backoff go out now, not at their next retry."""
        with self._lock:
            for uid in self._pending:
                if self.queue.num_requeues(uid):
                    self.queue.forget(uid)
                    self.queue.add(uid)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._pending.clear()
            self.metrics.gate_pending.set(0)
        self.queue.shut_down()

    # -- decisions (under the lock) --------------------------------------------------------------------------

    def _eligible(self, pod: JSON) -> bool:
        return (
            podfacts.has_gate(pod)
            and not podfacts.is_deleting(pod)
            and not podfacts.is_terminal(pod)
            and self.namespace_enabled(podfacts.namespace_of(pod))
        )

    def _forget(self, uid: str) -> None:
        """Stop tracking the pod (a key still queued finds nothing pending and is dropped)."""
        self._pending.pop(uid, None)
        self.queue.forget(uid)
        self.metrics.gate_pending.set(len(self._pending))

    def _evaluate(self, uid: str, pod: JSON) -> None:
        if self._stopped:
            return
        if not self._eligible(pod):
            self._forget(uid)
            return
        if podfacts.condition_true(pod, names.CONDITION_REGISTERED):
            self._done.add(uid)
            self._forget(uid)
            return
        if uid in self._done:
            return  # our PATCH is on its way back through the watch
        key = f"{podfacts.namespace_of(pod)}/{podfacts.meta(pod).get('name')}"
        entry = self._pending.get(uid)
        if entry is None:
            entry = self._pending[uid] = _Pending(key)
            self.metrics.gate_pending.set(len(self._pending))
        ready = podfacts.condition(pod, CONTAINERS_READY)
        if ready is None or ready.get("status") != "True":
            entry.seen_unready = True
            entry.ready_since = entry.ready_since_ltt = None  # a timer still queued finds the pod unready
            return
        ltt = ready.get("lastTransitionTime")
        if entry.ready_since is not None and entry.ready_since_ltt == ltt:
            return  # already counting from this transition
        now = time.monotonic()
        if entry.seen_unready:
            since = now  # we watched it become ready: our clock is the precise one
        else:
            # The stamp has whole seconds, cut off: the transition happened in [stamp, stamp + 1). Counting from
            # its latest possible moment (but not after now, when we see the pod) never registers early.
            stamp = podfacts.parse_time(ltt)
            since = now - max(0.0, time.time() - (stamp + 1.0)) if stamp is not None else now
        entry.ready_since, entry.ready_since_ltt = since, ltt
        entry.delay = podfacts.register_delay(pod, self.default_delay)
        self.queue.forget(uid)  # a new transition: PATCH retries start from the first step
        self.queue.add_after(uid, since + entry.delay - now)
        log.debug("gate timer started", extra={"pod": key, "delay": entry.delay})

    # -- the PATCH (worker thread) ---------------------------------------------------------------------------

    def _sync(self, uid: str) -> None:
        """The pod's key came up: PATCH if its containers have been ready for the delay, else wait on."""
        with self._lock:
            entry = self._pending.get(uid)
            if entry is None or self._stopped:
                return
            pod = self.pods.get(entry.key)
            if pod is None or podfacts.uid_of(pod) != uid:
                self._forget(uid)
                return
            ready = podfacts.condition(pod, CONTAINERS_READY)
            same = ready is not None and ready.get("lastTransitionTime") == entry.ready_since_ltt
            if ready is None or ready.get("status") != "True" or not same or entry.ready_since is None:
                return  # the watch handler has (re)scheduled or cancelled this pod already
            remaining = entry.ready_since + entry.delay - time.monotonic()
            if remaining > 0:
                self.queue.add_after(uid, remaining)  # an earlier timer of an older transition
                return
            delay = entry.delay
            key = entry.key
        try:
            timeout = self.write_timeout()
        except NotLeader:  # see NOT_LEADER_RETRY
            with self._lock:
                if uid in self._pending and not self._stopped:
                    self.queue.add_after(uid, NOT_LEADER_RETRY)
            return
        namespace, name = key.split("/", 1)
        path = f"/api/v1/namespaces/{path_segment(namespace)}/pods/{path_segment(name)}/status"
        try:
            self.kube.patch(path, status_patch(uid, delay), "strategic", timeout=(min(5.0, timeout), timeout))
        except KubeError as exc:
            self._failed(uid, key, exc)
            return
        self.metrics.gate_patches.labels("success").inc()
        with self._lock:
            self._done.add(uid)
            self._forget(uid)
        log.info(
            "pod registered",
            extra={"pod": key, "uid": uid, "register_delay": delay, "condition": names.CONDITION_REGISTERED},
        )

    def _failed(self, uid: str, key: str, exc: KubeError) -> None:
        self.metrics.gate_patches.labels("failure").inc()
        if exc.status in (404, 409, 422):
            # Gone, replaced by a pod with the same name (UID precondition), or not patchable: nothing to retry.
            log.info("pod not registered", extra={"pod": key, "uid": uid, "error": str(exc)})
            with self._lock:
                self._forget(uid)
            return
        with self._lock:
            if uid not in self._pending or self._stopped:
                return
            delay = self.queue.add_rate_limited(uid, at_least=exc.retry_after or 0.0)
        log.warning("registering pod failed; retrying", extra={"pod": key, "error": str(exc), "retry_in": delay})
