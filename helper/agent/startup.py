"""The agent's online side: wait until the app can serve, run the self warm-up, declare the pod ready, then keep
watching the app so readiness follows it.

Many apps open their port long before they can serve (a JVM binds, then spends seconds in class loading and
caches), so when the webhook handed over the app's httpGet readiness probe the agent waits for that path to answer
2xx/3xx; otherwise an accepted TCP connection is the signal. The wait polls with a short capped backoff (20 ms to
100 ms) because the time from "app can serve" to "pod ready" is lost capacity during every rollout; a connect or a
GET on localhost ten times a second, for the seconds an app takes to start, costs nothing measurable.

Once ready, the agent checks the app every 2 seconds, the same check (:func:`watch`): an app container that
crashes or is OOM-killed comes back as a new process that must listen and warm up again, and the kubelet counts
an app container without a readiness probe of its own (the probe was handed to the agent) as ready the moment it
runs. So after ``FAILURE_THRESHOLD`` failed checks in a row (like the kubelet's failureThreshold: one slow answer
does not flap) /ready turns 503 and the start-up runs again. During the drain the watch is stopped: the app going
away then is the plan, not a failure.

A container the kubelet kills to restart it (a failed liveness or startup probe) gets its preStop hook first, so
the agent drains as for a pod deletion. The difference shows afterwards: a deleted pod's app never comes back, a
restarted container's does. :func:`replaced` watches for that after the drain (twice a second, only then), and the
agent starts over (run.py).
"""

from __future__ import annotations

import time

from helper import aio, jsonlog
from helper.agent import selfwarm
from helper.agent.appconn import App
from helper.agent.state import AgentState
from helper.backoff import Backoff
from helper.config import AgentConfig

PROBE_TIMEOUT = 2.0
"""Seconds one readiness check may take (the kubelet's probe default is 1 s; the agent is a bit more patient)."""
PROGRESS_LOG_INTERVAL = 10.0
WATCH_PERIOD = 2.0
"""Seconds between checks of a ready app: one loopback connect (or GET) every 2 s, under 0.1 % of a core."""
WATCH_RECHECK = 0.2
"""Seconds to the next check after a failed one, so a crashed app is confirmed gone quickly."""
FAILURE_THRESHOLD = 2
"""Failed checks in a row that make the app lost (the kubelet's readiness default is 3 at a 10 s period)."""
REPLACED_PERIOD = 0.5
"""Seconds between checks after a drain, looking for a restarted container (a short phase: the pod's last seconds,
or the restart)."""


async def check(config: AgentConfig, app: App, timeout: float = PROBE_TIMEOUT) -> str | None:
    """One readiness check of the app, as the kubelet would probe it; None when it can serve, else why not."""
    try:
        if config.ready_path is None:
            await app.accepts(timeout)
            return None
        status = await app.probe(config.ready_path, timeout)
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__
    if 200 <= status < 400:
        return None
    return f"{config.ready_path} answered HTTP {status}"


async def wait_for_app(config: AgentConfig, state: AgentState, app: App) -> None:
    """Return once the app answers (port accepts, or the readiness path answers 2xx/3xx)."""
    state.enter("waiting_for_app", app_port=config.app_port, ready_path=config.ready_path)
    backoff = Backoff(first=0.02, cap=0.1)
    loop = aio.get_running_loop()
    started = loop.time()
    next_log = started + PROGRESS_LOG_INTERVAL
    checks = 0
    while True:
        checks += 1
        problem = await check(config, app)
        if problem is None:
            break
        app.forget()  # not found where it was: try every candidate address again next time
        if loop.time() >= next_log:
            jsonlog.info("still waiting for the app", waited_s=round(loop.time() - started, 1), last_error=problem)
            next_log = loop.time() + PROGRESS_LOG_INTERVAL
        await aio.sleep(backoff.next_delay())
    state.app_ready_at = time.time()
    state.app_address = app.address
    jsonlog.info("app is serving", waited_s=round(loop.time() - started, 3), checks=checks, address=app.address)


async def run(config: AgentConfig, state: AgentState, app: App) -> None:
    """One start-up: the pod is ready (phase ``ready``) when this returns normally."""
    if config.app_port is not None:
        await wait_for_app(config, state, app)
    try:
        await selfwarm.run(config, state, app)
    except aio.CancelledError:
        raise
    except Exception as error:  # warm-up is an optimisation: a bug in it must not keep the pod unready
        jsonlog.error("self warm-up failed unexpectedly; continuing", error=repr(error))
    app_ready = state.app_ready_at
    state.enter(
        "ready",
        since_app_ready_s=round(time.time() - app_ready, 3) if app_ready is not None else None,
        warmup_ok=state.warmup.ok,
        warmup_errors=state.warmup.errors,
    )


async def watch(config: AgentConfig, app: App) -> tuple[int, str]:
    """Check the ready app every ``WATCH_PERIOD``; return (failures, last problem) once it failed
    ``FAILURE_THRESHOLD`` checks in a row."""
    failures = 0
    problem = ""
    while failures < FAILURE_THRESHOLD:
        await aio.sleep(WATCH_RECHECK if failures else WATCH_PERIOD)
        found = await check(config, app)
        if found is None:
            failures = 0
        else:
            failures, problem = failures + 1, found
    return failures, problem


async def online(config: AgentConfig, state: AgentState, app: App) -> None:
    """Start up, then follow the app: whenever it is lost, wait for it, warm it up and become ready again.

    Runs until cancelled (the drain begins, or the agent stops); returns only when there is no app to follow.
    """
    while True:
        await run(config, state, app)
        if config.app_port is None:
            return
        failures, problem = await watch(config, app)
        if not state.lose_app(failures=failures, last_error=problem, address=app.address):
            return  # going offline meanwhile: the app may go, nothing to follow any more
        app.forget()


async def replaced(config: AgentConfig, app: App) -> None:
    """After a drain: return once the drained app went away and an app answers again (its container restarted).

    In a pod deletion the app never answers again and this runs until the agent is stopped.
    """
    failures = 0
    while failures < FAILURE_THRESHOLD:
        await aio.sleep(REPLACED_PERIOD)
        failures = failures + 1 if await check(config, app) is not None else 0
    app.forget()
    while await check(config, app) is not None:
        await aio.sleep(REPLACED_PERIOD)
