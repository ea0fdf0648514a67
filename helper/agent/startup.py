"""The agent's start-up: wait until the app can serve, run the self warm-up, then declare the pod ready.

Many apps open their port long before they can serve (a JVM binds, then spends seconds in class loading and
caches), so when the webhook handed over the app's httpGet readiness probe the agent waits for that path to answer
2xx/3xx; otherwise an accepted TCP connection is the signal. The wait polls with a short capped backoff (20 ms to
100 ms) because the time from "app can serve" to "pod ready" is lost capacity during every rollout; a connect or a
GET on localhost ten times a second, for the seconds an app takes to start, costs nothing measurable. It is the
only polling the agent ever does: once ready, nothing runs until a request arrives.
"""

from __future__ import annotations

import asyncio
import time

from helper import jsonlog
from helper.agent import appconn, selfwarm
from helper.agent.state import AgentState
from helper.backoff import Backoff
from helper.config import AgentConfig
from helper.http.client import Connection
from helper.http.dial import dial_host

PROBE_TIMEOUT = 2.0
"""Seconds one readiness check may take (the kubelet's probe default is 1 s; the agent is a bit more patient)."""
PROGRESS_LOG_INTERVAL = 10.0


async def _check(config: AgentConfig, connection: Connection | None) -> str | None:
    """One readiness check of the app; None when it can serve, else why not."""
    assert config.app_port is not None
    try:
        if connection is None or config.ready_path is None:
            _, writer, _ = await dial_host(config.app_host, config.app_port, PROBE_TIMEOUT)
            writer.transport.abort()
            return None
        response = await connection.request("GET", config.ready_path, timeout=PROBE_TIMEOUT)
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT:g}s"
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__
    if 200 <= response.status < 400:
        return None
    return f"{config.ready_path} answered HTTP {response.status}"


async def wait_for_app(config: AgentConfig, state: AgentState) -> None:
    """Return once the app answers (port accepts, or the readiness path answers 2xx/3xx)."""
    if config.app_port is None:
        return
    state.enter("waiting_for_app", app_port=config.app_port, ready_path=config.ready_path)
    connection = appconn.connection(config, appconn.tls_context(config)) if config.ready_path else None
    backoff = Backoff(first=0.02, cap=0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    next_log = started + PROGRESS_LOG_INTERVAL
    checks = 0
    try:
        while True:
            checks += 1
            problem = await _check(config, connection)
            if problem is None:
                break
            if loop.time() >= next_log:
                jsonlog.info("still waiting for the app", waited_s=round(loop.time() - started, 1), last_error=problem)
                next_log = loop.time() + PROGRESS_LOG_INTERVAL
            await asyncio.sleep(backoff.next_delay())
    finally:
        if connection is not None:
            connection.close()
    state.app_ready_at = time.time()
    jsonlog.info("app is serving", waited_s=round(loop.time() - started, 3), checks=checks)


async def run(config: AgentConfig, state: AgentState) -> None:
    """The whole start-up; the pod is ready (phase ``ready``) when this returns normally."""
    await wait_for_app(config, state)
    try:
        await selfwarm.run(config, state)
    except asyncio.CancelledError:
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
