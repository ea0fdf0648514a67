"""The agent's endpoints: /ready /ready/app /prestop /status /healthz /metrics.

- ``/ready``: 200 once the app serves and self warm-up is done, and through the drain that follows (the pod stays
  *serving* while it drains); 503 before, whenever the app stops answering, and once the drain is over (the agent
  container's readiness probe points here);
- ``/ready/app``: ``/ready`` plus a check of the app made now, for the readiness probe the webhook gives an app
  container that has none of its own. The kubelet counts such a container ready the moment it runs, so after a
  crash or OOM kill the pod would be Ready again before the restarted app listens, and before the agent (which
  checks every 2 s) has even noticed; with this probe the kubelet starts the restarted container unready and keeps
  it so until the app answers again and the agent is ready;
- ``/prestop``: the offline sequence (see offline.py); GET (the kubelet's httpGet hook) or POST;
- ``/status``: JSON for humans and tools: phase, timestamps, warm-up progress and the current warm-up weight;
- ``/healthz``: 200 while the process runs (liveness);
- ``/metrics``: Prometheus text.
"""

from __future__ import annotations

import json
import time

from helper import jsonlog
from helper.agent import metrics, startup
from helper.agent.appconn import App
from helper.agent.offline import OfflineSequence
from helper.agent.state import AgentState
from helper.config import AgentConfig
from helper.http.server import Request, Response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

JSON = "application/json"
ENDPOINTS = ("/ready", "/ready/app", "/prestop", "/status", "/healthz", "/metrics")
_READ = ("GET", "HEAD")
_METHODS = {
    "/ready": _READ,
    "/ready/app": _READ,
    "/status": _READ,
    "/healthz": _READ,
    "/metrics": _READ,
    "/prestop": ("GET", "POST"),
}
APP_CHECK_TIMEOUT = 0.8
"""Seconds the live check of ``/ready/app`` may take: under the probe's 2 s timeout, so the kubelet hears why."""


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status, (json.dumps(body, separators=(",", ":")) + "\n").encode("utf-8"), JSON)


def _seconds_ago(now: float, then: float | None) -> float | None:
    return None if then is None else round(now - then, 3)


def _registry_status(registry: Any) -> dict[str, Any]:
    """A registry's own report (Nacos: mode, instance, state, weight, last error), else just its name."""
    report = getattr(registry, "status", None)
    return report() if callable(report) else {"registry": getattr(registry, "name", type(registry).__name__)}


class Routes:
    def __init__(self, config: AgentConfig, state: AgentState, offline: OfflineSequence, app: App) -> None:
        self.config = config
        self.state = state
        self.offline = offline
        self.app = app

    async def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        endpoint = path if path in _METHODS else "other"
        if endpoint == "other":
            response = Response(404, ("not found; endpoints: " + " ".join(ENDPOINTS) + "\n").encode())
        elif request.method not in _METHODS[path]:
            allowed = ", ".join(_METHODS[path])
            response = Response(405, f"use {allowed}\n".encode(), headers=(("Allow", allowed),))
        elif path == "/ready":
            response = self._ready()
        elif path == "/ready/app":
            response = await self._app_ready()
        elif path == "/prestop":
            response = await self._prestop(request)
        elif path == "/status":
            response = _json(200, self.status())
        elif path == "/metrics":
            response = Response(200, metrics.render(self.config, self.state).encode(), metrics.CONTENT_TYPE)
        else:
            response = Response(200, b"ok\n")
        self.state.count_http(endpoint, response.status)
        return response

    def _ready(self) -> Response:
        phase = self.state.phase
        if self.state.ready:
            return Response(200, b"ready\n" if phase == "ready" else f"ready ({phase})\n".encode())
        return Response(503, f"not ready: {phase}\n".encode())

    async def _app_ready(self) -> Response:
        """The app container's probe: the agent is ready and the app answers its readiness check right now."""
        if not self.state.ready:
            return self._ready()
        problem = await startup.check(self.config, self.app, APP_CHECK_TIMEOUT)
        if problem is not None:
            self.state.app_check_failures += 1
            return Response(503, f"not ready: the app does not answer: {problem}\n".encode())
        return self._ready()  # the state may have changed during the check

    async def _prestop(self, request: Request) -> Response:
        self.state.prestop_calls += 1
        call = self.state.prestop_calls
        jsonlog.info("prestop called", call=call, peer=request.peer, phase=self.state.phase)
        summary, joined = await self.offline.run()
        return _json(200, {**summary, "call": call, "joined": joined})

    def status(self) -> dict[str, Any]:
        config, state = self.config, self.state
        now = time.time()
        progress = state.warmup
        return {
            "phase": state.phase,
            "ready": state.ready,
            "started_at": jsonlog.timestamp(state.started_at),
            "uptime_s": round(now - state.started_at, 3),
            "phases": {phase: jsonlog.timestamp(at) for phase, at in state.phase_times.items()},
            "app": {
                "port": config.app_port,
                "ready_path": config.ready_path,
                "address": state.app_address,
                "serving_since": None if state.app_ready_at is None else jsonlog.timestamp(state.app_ready_at),
                "lost": state.app_lost,
                "replaced_after_drain": state.app_replaced,
            },
            "warmup": {
                "requests": {
                    "planned": progress.planned,
                    "done": progress.done,
                    "ok": progress.ok,
                    "errors": progress.errors,
                    "cut_short": progress.cut_short,
                },
                "window_s": config.warmup_window,
                "curve": config.curve_spec,
                "k": config.curve.k,
                "min_percent": round(config.curve.min_fraction * 100, 3),
                "elapsed_s": _seconds_ago(now, state.ready_at),
                "weight": round(metrics.current_weight(config, state, now), 3),
            },
            "drain_s": config.drain,
            "prestop_calls": state.prestop_calls,
            "registries": [_registry_status(registry) for registry in self.offline.registries],
            "identity": {
                "pod": config.identity.pod,
                "namespace": config.identity.namespace,
                "lane": config.identity.lane,
                "app": config.identity.app,
            },
        }
