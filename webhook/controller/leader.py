"""Leader election over a ``coordination.k8s.io/v1`` Lease, written with plain GET/POST/PUT.

Every replica serves admission; exactly one runs the loops that write (gate PATCHes, evictions, certificate
rotation). The algorithm is client-go's ``leaderelection`` with a Lease lock:

- a candidate reads the Lease; if another identity holds it, the candidate waits until the record has not
  changed for ``lease_duration`` *as measured by its own clock since it first saw that record* (so clock skew
  between replicas does not matter), then takes it with a ``resourceVersion``-checked PUT: of several candidates
  only one write succeeds, the rest get 409;
- the leader renews every ``retry_period``; if it has not renewed successfully for ``renew_deadline`` it stops
  acting at once (``on_stop``), before anyone else can take the Lease (``lease_duration`` > ``renew_deadline``);
- :meth:`LeaderElector.is_leading` checks that deadline against the clock on every call, so a write path that
  asks right before writing is safe even if the renew thread is stuck;
- on a clean shutdown the leader releases the Lease (empty holder) so a successor takes over immediately.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable

from webhook.controller.metrics import ControllerMetrics
from webhook.controller.settings import LeaseTiming
from webhook.kube.client import JSON, Kube, KubeError, path_segment

log = logging.getLogger("lanes.controller.leader")


class NotLeader(Exception):
    """Raised by write paths that find this replica no longer leads."""


NOT_LEADER_RETRY = 0.5
"""Seconds before a write held back because leadership was momentarily unconfirmed is tried again. Not a verdict
on the object: the last renewal is just older than the renew deadline. If the term ends, the loop's queue is shut
down and the retry is dropped; if the renewal lands after all, the term carries on and nothing else would bring the
object back (its watch events are already in)."""


def micro_time(moment: dt.datetime | None = None) -> str:
    """A Kubernetes ``MicroTime``: RFC 3339 with microseconds, UTC."""
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Run :meth:`run` on a thread; ``on_start``/``on_stop`` are called on that thread and must not block."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming,
        *,
        on_start: Callable[[], None],
        on_stop: Callable[[], None],
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self.on_start = on_start
        self.on_stop = on_stop
        self.metrics = metrics
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{path_segment(namespace)}/leases/{path_segment(name)}"
        self._leading = False
        self._renewed_at = 0.0  # monotonic time of the start of the last successful acquire/renew
        self._observed: tuple[object, ...] | None = None
        self._observed_at = 0.0
        self._transitions = 0

    # -- what the write paths ask --------------------------------------------------------------------------

    def is_leading(self) -> bool:
        """True only while the last successful renewal is younger than the renew deadline."""
        return self._leading and time.monotonic() < self._renewed_at + self.timing.renew_deadline

    def write_timeout(self) -> float:
        """Seconds a write may take and still land before another replica could hold the Lease; raises
        :class:`NotLeader` when this replica must not start a write at all."""
        if not self.is_leading():
            raise NotLeader(self.identity)
        return max(0.1, self._renewed_at + self.timing.lease_duration - time.monotonic() - 0.5)

    # -- the loop ------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Campaign, lead, and campaign again after losing the Lease, until ``stop``; then release."""
        try:
            while not stop.is_set():
                if not self._acquire(stop):
                    break
                self._begin()
                self._renew_until_lost(stop)
                self._end()
        finally:
            if self._leading:
                self._end()
            self._release()

    def _begin(self) -> None:
        self._leading = True
        log.info("became leader", extra={"lease": f"{self.namespace}/{self.name}", "identity": self.identity})
        if self.metrics:
            self.metrics.leader.set(1)
        self.on_start()

    def _end(self) -> None:
        self._leading = False
        if self.metrics:
            self.metrics.leader.set(0)
        log.info("stopped leading", extra={"lease": f"{self.namespace}/{self.name}", "identity": self.identity})
        self.on_stop()

    def _acquire(self, stop: threading.Event) -> bool:
        while not stop.is_set():
            if self._try_acquire_or_renew(timeout=self.timing.retry_period * 2):
                return True
            stop.wait(self.timing.retry_period * random.uniform(1.0, 1.2))
        return False

    def _renew_until_lost(self, stop: threading.Event) -> None:
        while not stop.wait(self.timing.retry_period):
            deadline = self._renewed_at + self.timing.renew_deadline
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning(
                        "could not renew the lease within the renew deadline; stopping the loops",
                        extra={"renew_deadline": self.timing.renew_deadline},
                    )
                    return
                if self._try_acquire_or_renew(timeout=max(0.2, remaining)):
                    break
                if self._held_by_other():
                    log.warning("the lease was taken by another replica", extra={"holder": self._observed})
                    return
                if stop.wait(min(self.timing.retry_period / 2, max(0.0, deadline - time.monotonic()))):
                    return

    # -- one attempt ---------------------------------------------------------------------------------------

    def _held_by_other(self) -> bool:
        holder = self._observed[0] if self._observed else None
        return holder not in (None, "", self.identity)

    def _try_acquire_or_renew(self, timeout: float) -> bool:
        started = time.monotonic()
        now = micro_time()
        request_timeout = (min(5.0, timeout), timeout)
        try:
            lease = self.kube.get(self.path, timeout=request_timeout)
        except KubeError as exc:
            if exc.status != 404:
                log.debug("lease read failed", extra={"error": str(exc)})
                return False
            return self._create(now, started, request_timeout)
        spec: JSON = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed = record
            self._observed_at = started
        duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
        if holder and holder != self.identity and self._observed_at + duration > started:
            return False  # held by someone else and not expired by our own clock
        transitions = int(spec.get("leaseTransitions") or 0)
        acquire_time = spec.get("acquireTime")
        if holder != self.identity:
            transitions += 1
            acquire_time = now
        lease["spec"] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.timing.lease_duration),
            "acquireTime": acquire_time or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }
        try:
            updated = self.kube.replace(self.path, lease, timeout=request_timeout)
        except KubeError as exc:
            log.debug("lease update failed", extra={"error": str(exc)})
            return False
        self._record_success(updated, started)
        return True

    def _create(self, now: str, started: float, request_timeout: tuple[float, float]) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.timing.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        collection = self.path.rsplit("/", 1)[0]
        try:
            created = self.kube.create(collection, body, timeout=request_timeout)
        except KubeError as exc:
            log.debug("lease create failed", extra={"error": str(exc)})
            return False
        self._record_success(created, started)
        return True

    def _record_success(self, lease: JSON, started: float) -> None:
        spec = lease.get("spec") or {}
        self._observed = (
            spec.get("holderIdentity"),
            spec.get("renewTime"),
            spec.get("leaseDurationSeconds"),
            spec.get("leaseTransitions"),
        )
        self._observed_at = started
        self._renewed_at = started
        self._transitions = int(spec.get("leaseTransitions") or 0)

    def _release(self) -> None:
        """Hand the Lease back (empty holder, 1 s duration) if we still hold it, so a successor need not wait."""
        if self._renewed_at == 0.0:
            return
        try:
            lease = self.kube.get(self.path, timeout=(2.0, 3.0))
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            now = micro_time()
            lease["spec"] = {
                "leaseDurationSeconds": 1,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": spec.get("leaseTransitions") or 0,
            }
            self.kube.replace(self.path, lease, timeout=(2.0, 3.0))
            log.info("released the lease", extra={"lease": f"{self.namespace}/{self.name}"})
        except KubeError as exc:
            log.warning("could not release the lease", extra={"error": str(exc)})
