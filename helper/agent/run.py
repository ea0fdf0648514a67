"""The ``lanes-agent`` native sidecar: one small process per pod, on helper.aio.

Wiring only: the HTTP server (httpserver.py) answers the endpoints (routes.py), the online side (startup.py: start-up,
then following the app) runs in the background until the drain begins, /prestop runs the offline sequence
(offline.py), and signals end the process:

- SIGTERM/SIGINT while a drain is in progress: finish the drain (so every /prestop caller gets its answer), then
  exit 0. The kubelet terminates native sidecars after the app containers, so in a normal pod deletion the drain
  is over by then; this covers the agent being stopped first (node drain, OOM of a neighbour, manual kill);
- SIGTERM/SIGINT otherwise: stop start-up work and exit 0 promptly.
"""

from __future__ import annotations

import os
import signal
import sys

from helper import aio, jsonlog
from helper.agent import appconn, startup
from helper.agent.offline import OfflineSequence
from helper.agent.routes import Routes
from helper.agent.state import AgentState
from helper.config import AgentConfig
from helper.http.server import HttpServer, Request
from helper.registries import base as registry
from helper.registries import online

EXIT_OK = 0
EXIT_CANNOT_LISTEN = 1
SHUTDOWN_GRACE = 2.0
"""Seconds requests in flight (the /prestop answers released by the drain) get to finish when stopping."""


async def serve(config: AgentConfig, registries: list[registry.Registry]) -> int:
    loop = aio.get_running_loop()
    state = AgentState()
    stop = aio.Event()
    start_task: aio.Task[None] | None = None
    revival: aio.Task[None] | None = None

    def on_signal(signum: int) -> None:
        if stop.is_set():
            jsonlog.info("signal received while stopping; still finishing", signal=signal.Signals(signum).name)
            return
        jsonlog.info("signal received", signal=signal.Signals(signum).name, phase=state.phase)
        stop.set()

    def stop_startup() -> None:
        if start_task is not None and not start_task.done():
            start_task.cancel()

    def on_protocol_error(status: int, message: str, peer: str) -> None:
        state.protocol_errors += 1

    def on_handler_error(request: Request, error: BaseException) -> None:
        jsonlog.error("handler failed", path=request.path, error=repr(error))

    def go_online() -> aio.Task[None]:
        return loop.create_task(online.alongside(startup.online(config, state, app), config, state, registries))

    async def restart_after_drain() -> None:
        """A drain whose app comes back was a container restart, not the pod's end: start over."""
        nonlocal start_task
        await offline.wait()
        if config.app_port is None:
            return  # nothing to watch: the agent cannot tell a restart from the pod's end
        await startup.replaced(config, app)
        if state.restart_after_drain():
            offline.rearm()
            start_task = go_online()

    def on_offline() -> None:
        nonlocal revival
        stop_startup()
        revival = loop.create_task(restart_after_drain())

    app = appconn.App(config, appconn.tls_context(config))
    offline = OfflineSequence(config, state, registries, on_start=on_offline)
    routes = Routes(config, state, offline, app)
    server = HttpServer(routes.handle, on_protocol_error=on_protocol_error, on_handler_error=on_handler_error)
    try:
        await server.start(None, config.port)  # every interface, IPv4 and IPv6
    except OSError as error:
        try:  # a pod whose IPv6 is disabled cannot bind "::"; IPv4 alone is still a working agent
            await server.start("0.0.0.0", config.port)
        except OSError:
            jsonlog.error("cannot listen", port=config.port, error=str(error))
            return EXIT_CANNOT_LISTEN
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    jsonlog.info(
        "agent listening",
        port=config.port,
        pid=os.getpid(),
        app_port=config.app_port,
        ready_path=config.ready_path,
        app_hosts=list(config.app_hosts),
        warmup_requests=[str(spec) for spec in config.warmup_requests],
        warmup_s=config.warmup_window,
        curve=config.curve_spec,
        drain_s=config.drain,
        notify=[str(url) for url in config.notify],
        registries=[getattr(r, "name", type(r).__name__) for r in registries],
        tls_loaded=sys.modules.get("ssl") is not None,
    )
    start_task = go_online()
    await stop.wait()

    stop_startup()
    if revival is not None:
        revival.cancel()
    await aio.gather(start_task, *([revival] if revival else []), return_exceptions=True)
    if offline.started:
        jsonlog.info("finishing the drain before exiting", phase=state.phase)
        await offline.wait()
    await server.shutdown(SHUTDOWN_GRACE)
    jsonlog.info("agent stopped", phase=state.phase, prestop_calls=state.prestop_calls)
    return EXIT_OK


def run(config: AgentConfig) -> int:
    """Run until SIGTERM; returns the exit status. Raises ConfigError for an unusable registry setting."""
    registries = registry.load(config.registries, config)
    return aio.run(serve(config, registries))
