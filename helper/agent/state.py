"""The agent's lifecycle state: one phase at a time, moving only forward, plus the counters the endpoints report.

    starting -> waiting_for_app -> warming_up -> ready -> draining -> drained

Phases can be skipped (no app port: straight to ready; a /prestop during start-up: straight to draining) but never
revisited, so a warm-up finishing after the pod began going offline cannot make /ready answer 200 again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from helper import jsonlog

PHASES = ("starting", "waiting_for_app", "warming_up", "ready", "draining", "drained")
_ORDER = {phase: index for index, phase in enumerate(PHASES)}


@dataclass(slots=True)
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


@dataclass(slots=True)
class AgentState:
    phase: str = "starting"
    started_at: float = field(default_factory=time.time)
    phase_times: dict[str, float] = field(default_factory=dict)
    app_ready_at: float | None = None
    ready_at: float | None = None
    warmup: WarmupProgress = field(default_factory=WarmupProgress)
    prestop_calls: int = 0
    notify_results: dict[str, int] = field(default_factory=dict)
    deregister_results: dict[tuple[str, str], int] = field(default_factory=dict)
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
        jsonlog.info(f"phase {phase}", phase=phase, previous=previous, **fields)
        return True

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

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
