"""The agent's /metrics in the Prometheus text exposition format (version 0.0.4), written by hand.

``prometheus_client`` would be the agent's only dependency and cost more memory than everything else it imports;
the format for a dozen counters and gauges is a few lines of text.
"""

from __future__ import annotations

import os
import time

from helper import footprint
from helper.agent.state import PHASES, AgentState
from helper.config import AgentConfig
from helper.warmup import weight

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        if labels:
            rendered = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items())
            self.lines.append(f"{name}{{{rendered}}} {_number(value)}")
        else:
            self.lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def current_weight(config: AgentConfig, state: AgentState, now: float | None = None) -> float:
    """The warm-up weight (0..100) this pod should get now: 0 until ready, then the ramp from the ready time."""
    if state.ready_at is None or state.going_offline:
        return 0.0
    now = time.time() if now is None else now
    return weight(now - state.ready_at, config.warmup_window, config.curve)


def render(config: AgentConfig, state: AgentState) -> str:
    out = _Writer()
    out.family("lanes_agent_phase", "gauge", "1 for the agent's current lifecycle phase, 0 for the others.")
    for phase in PHASES:
        out.sample("lanes_agent_phase", 1 if state.phase == phase else 0, phase=phase)
    out.family("lanes_agent_ready", "gauge", "1 while /ready answers 200.")
    out.sample("lanes_agent_ready", 1 if state.ready else 0)
    out.family("lanes_agent_app_lost_total", "counter", "Times the app stopped answering after the pod was ready.")
    out.sample("lanes_agent_app_lost_total", state.app_lost)
    out.family(
        "lanes_agent_app_check_failures_total",
        "counter",
        "The app container's readiness probe (/ready/app) found the app not answering while the agent was ready.",
    )
    out.sample("lanes_agent_app_check_failures_total", state.app_check_failures)
    out.family(
        "lanes_agent_warmup_requests_total", "counter", "Self warm-up requests completed, by result (ok: < 400)."
    )
    out.sample("lanes_agent_warmup_requests_total", state.warmup.ok, result="ok")
    out.sample("lanes_agent_warmup_requests_total", state.warmup.errors, result="error")
    out.family("lanes_agent_warmup_requests_planned", "gauge", "Self warm-up requests configured.")
    out.sample("lanes_agent_warmup_requests_planned", state.warmup.planned)
    out.family("lanes_agent_warmup_weight", "gauge", "Current warm-up weight in percent of the full share.")
    out.sample("lanes_agent_warmup_weight", round(current_weight(config, state), 3))
    out.family("lanes_agent_warmup_window_seconds", "gauge", "Configured traffic ramp window.")
    out.sample("lanes_agent_warmup_window_seconds", config.warmup_window)
    out.family("lanes_agent_prestop_calls_total", "counter", "Calls to /prestop (one per app container).")
    out.sample("lanes_agent_prestop_calls_total", state.prestop_calls)
    out.family("lanes_agent_drain_seconds", "gauge", "Configured drain: seconds served after deregistration.")
    out.sample("lanes_agent_drain_seconds", config.drain)
    out.family("lanes_agent_notify_total", "counter", "Going-offline notifications, by result.")
    for result in ("ok", "failed", "cut_off"):
        out.sample("lanes_agent_notify_total", state.notify_results.get(result, 0), result=result)
    out.family("lanes_agent_deregister_total", "counter", "Registry deregistrations, by registry and result.")
    for (registry, result), count in sorted(state.deregister_results.items()):
        out.sample("lanes_agent_deregister_total", count, registry=registry, result=result)
    out.family(
        "lanes_agent_registry_operations_total",
        "counter",
        "Calls to external registries (Nacos), by registry, operation and result (ok, rejected, unreachable, ...).",
    )
    for (registry, operation, result), count in sorted(state.registry_results.items()):
        labels = {"registry": registry, "operation": operation, "result": result}
        out.sample("lanes_agent_registry_operations_total", count, **labels)
    out.family("lanes_agent_http_requests_total", "counter", "Requests answered, by endpoint and status code.")
    for (endpoint, status), count in sorted(state.http_requests.items()):
        out.sample("lanes_agent_http_requests_total", count, endpoint=endpoint, code=str(status))
    out.family("lanes_agent_http_protocol_errors_total", "counter", "Malformed or refused HTTP connections.")
    out.sample("lanes_agent_http_protocol_errors_total", state.protocol_errors)
    out.family("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch.")
    out.sample("process_start_time_seconds", round(state.started_at, 3))
    rss = footprint.resident_bytes()
    if rss is not None:
        out.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        out.sample("process_resident_memory_bytes", rss)
    times = os.times()
    out.family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.")
    out.sample("process_cpu_seconds_total", round(times.user + times.system, 3))
    return out.text()
