"""The agent's lifecycle state: one phase at a time, plus the counters the endpoints report.

    starting -> waiting_for_app -> warming_up -> ready -> draining -> drained
                      ^                            |                      |
                      +-------- app lost ----------+                      |
                      +------- container restarted after its drain -------+

Phases move forward, with two ways back: an app that stops answering once the pod is ready (a crash, an OOM kill)
sends the agent back to ``waiting_for_app``, so it waits, warms up and declares readiness again; and a drained app
that is replaced by a new process (the kubelet ran its preStop hook to restart the container after a failed
liveness probe) does the same. Nothing leaves ``draining``, and ``drained`` only that way: a warm-up finishing, or
the app going away, after the pod began going offline changes nothing. Phases can be skipped (no app port: straight
to ready; a /prestop during start-up: straight to draining).

/ready answers 200 while ``ready`` and, if the drain began from ``ready``, during ``draining`` too: the pod stays
*serving* while it drains (see docs/lossless.md, "Why the pod stays serving").
"""

from __future__ import annotations

import time
from collections.abc import Callable

from helper import jsonlog
from helper.record import field, record

PHASES = ("starting", "waiting_for_app", "warming_up", "ready", "draining", "drained")
_ORDER = {phase: index for index, phase in enumerate(PHASES)}


@record(slots=True)
class WarmupProgress:
    """Self warm-up requests: planned from the spec, then counted as they complete."""

    planned: int = 0
    ok: int = 0
    errors: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    cut_short: bool = False
    """The time bound ended the warm-up before every planned request completed."""

    @property
    def done(self) -> int:
        return self.ok + self.errors


@record(slots=True)
class AgentState:
    phase: str = "starting"
    started_at: float = field(default_factory=time.time)
    phase_times: dict[str, float] = field(default_factory=dict)
    app_ready_at: float | None = None
    app_address: str | None = None
    """Where the agent last found the app (127.0.0.1, ::1, a pod IP or the probe's host)."""
    ready_at: float | None = None
    warmup: WarmupProgress = field(default_factory=WarmupProgress)
    prestop_calls: int = 0
    app_lost: int = 0
    """Times the app stopped answering after the pod was ready."""
    app_check_failures: int = 0
    """``/ready/app`` answers 503 because the app did not answer while the agent was ready (a restart the agent's
    own watch had not seen yet, or an app too slow to answer)."""
    app_replaced: int = 0
    """Times a drained app came back as a new process (its container was restarted, the pod was not deleted)."""
    serving_in_drain: bool = False
    """The drain began while ready: /ready keeps answering 200 until it ends."""
    notify_results: dict[str, int] = field(default_factory=dict)
    deregister_results: dict[tuple[str, str], int] = field(default_factory=dict)
    registry_results: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """Calls to external registries by (registry, operation, result), e.g. ("nacos", "register", "ok")."""
    on_ready: list[Callable[[], None]] = field(default_factory=list)
    """Called each time the pod becomes ready (helper/registries/online.py waits for it this way)."""
    http_requests: dict[tuple[str, int], int] = field(default_factory=dict)
    protocol_errors: int = 0

    def __post_init__(self) -> None:
        self.phase_times.setdefault(self.phase, self.started_at)

    def enter(self, phase: str, **fields: object) -> bool:
        """Move forward to ``phase`` (logged); returns False, changing nothing, if that would move backward."""
        if _ORDER[phase] <= _ORDER[self.phase]:
            return False
        now = time.time()
        previous = self.phase
        self.phase = phase
        self.phase_times[phase] = now
        if phase == "ready":
            self.ready_at = now
            for callback in self.on_ready:
                callback()
        if phase == "draining":
            self.serving_in_drain = previous == "ready"
        jsonlog.info(f"phase {phase}", phase=phase, previous=previous, **fields)
        return True

    def lose_app(self, **fields: object) -> bool:
        """The app stopped answering: back to ``waiting_for_app``; False (nothing changed) once going offline."""
        if self.going_offline or self.phase in ("starting", "waiting_for_app"):
            return False
        previous = self.phase
        self.phase = "waiting_for_app"
        self.phase_times["waiting_for_app"] = time.time()
        self.app_lost += 1
        self.app_ready_at = self.ready_at = None
        jsonlog.warning("app lost", previous=previous, lost=self.app_lost, **fields)
        return True

    def restart_after_drain(self) -> bool:
        """The drained app was replaced by a new process: back to ``waiting_for_app`` (only from ``drained``)."""
        if self.phase != "drained":
            return False
        self.phase = "waiting_for_app"
        self.phase_times["waiting_for_app"] = time.time()
        self.app_replaced += 1
        self.serving_in_drain = False
        self.app_ready_at = self.ready_at = None
        jsonlog.warning(
            "app restarted after its drain: that preStop was a container restart, not the pod's end; starting over",
            replaced=self.app_replaced,
        )
        return True

    @property
    def ready(self) -> bool:
        """/ready answers 200: ready, or draining from ready (the pod keeps serving through its drain)."""
        return self.phase == "ready" or (self.phase == "draining" and self.serving_in_drain)

    @property
    def going_offline(self) -> bool:
        return _ORDER[self.phase] >= _ORDER["draining"]

    def count_http(self, endpoint: str, status: int) -> None:
        key = (endpoint, status)
        self.http_requests[key] = self.http_requests.get(key, 0) + 1

    def count_notify(self, result: str) -> None:
        self.notify_results[result] = self.notify_results.get(result, 0) + 1

    def count_deregister(self, registry: str, result: str) -> None:
        key = (registry, result)
        self.deregister_results[key] = self.deregister_results.get(key, 0) + 1

    def count_registry(self, registry: str, operation: str, result: str) -> None:
        key = (registry, operation, result)
        self.registry_results[key] = self.registry_results.get(key, 0) + 1
