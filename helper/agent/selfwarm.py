"""Self warm-up: the requests the agent sends to its own app before the pod may become ready.

Lazy caches, JIT compilation, connection pools and class loading make an app's first requests slow; sending them
from inside the pod before readiness means real users never pay for them. Requests come from
``LANES_WARMUP_REQUESTS`` (``GET /api/items x50 c4``): each item runs ``count`` requests over ``concurrency``
keep-alive connections, items one after another.

Warm-up is never fatal: failures (connection errors, 4xx/5xx) are counted and reported, and the whole warm-up is
bounded by ``LANES_WARMUP_REQUESTS_DEADLINE`` (default 60 s), after which the pod proceeds to ready anyway.
"""

from __future__ import annotations

import time

from helper import aio, jsonlog
from helper.agent.appconn import App
from helper.agent.state import AgentState, WarmupProgress
from helper.config import AgentConfig
from helper.specs import WarmupRequest

REQUEST_TIMEOUT = 10.0
WARMUP_HEADERS = (("User-Agent", "lanes-agent/warmup"), ("X-Lanes-Warmup", "1"))
"""Lets the app keep warm-up requests out of its business metrics and access logs if it wants to."""


async def _worker(app: App, spec: WarmupRequest, progress: WarmupProgress, tickets: list[int]) -> None:
    connection = app.connection()
    try:
        while tickets:
            tickets.pop()
            try:
                response = await connection.request(
                    spec.method, spec.path, timeout=REQUEST_TIMEOUT, headers=WARMUP_HEADERS, keep=0
                )
            except aio.CancelledError:  # the time bound ended the warm-up with this request in flight
                progress.errors += 1
                raise
            except OSError:  # includes TimeoutError and malformed responses (HttpError)
                progress.errors += 1
                connection.close()
                continue
            if response.status < 400:
                progress.ok += 1
            else:
                progress.errors += 1
    finally:
        connection.close()


async def _run_item(app: App, spec: WarmupRequest, progress: WarmupProgress) -> None:
    tickets = list(range(spec.count))
    async with aio.TaskGroup() as group:
        for _ in range(min(spec.concurrency, spec.count)):
            group.create_task(_worker(app, spec, progress, tickets))


async def run(config: AgentConfig, state: AgentState, app: App) -> None:
    """Send every configured warm-up request (bounded in time); counts land in ``state.warmup``, fresh for each
    start-up of the app (a restarted app is a new, cold process)."""
    specs = config.warmup_requests
    if not specs or config.app_port is None:
        return
    progress = state.warmup = WarmupProgress()
    progress.planned = sum(spec.count for spec in specs)
    if not state.enter("warming_up", planned=progress.planned, requests=[str(spec) for spec in specs]):
        return
    progress.started_at = time.time()
    try:
        async with aio.timeout(config.warmup_requests_deadline):
            for spec in specs:
                await _run_item(app, spec, progress)
    except TimeoutError:
        progress.cut_short = True
    progress.finished_at = time.time()
    fields = {
        "ok": progress.ok,
        "errors": progress.errors,
        "planned": progress.planned,
        "seconds": round(progress.finished_at - progress.started_at, 3),
    }
    if progress.cut_short:
        jsonlog.warning(
            "self warm-up cut short by its time bound",
            deadline_s=config.warmup_requests_deadline,
            not_sent=progress.planned - progress.done,
            **fields,
        )
    else:
        jsonlog.info("self warm-up done", **fields)
