"""The online step for external registries: hold, wait for ready + register delay, register, ramp the weight.

Kubernetes needs no online step (readiness is the registration). A registry that implements
:class:`~helper.registries.base.OnlineRegistry` (Nacos) gets, in order:

1. ``hold()`` from the agent's start (manage mode keeps the app's own early registration out of service);
2. once the pod is ready (start-up returned) and ``LANES_REGISTER_DELAY`` more seconds passed: ``register(f0)``,
   ``f0`` the floor of the warm-up curve, retried with a capped backoff (0.5 s to 10 s) while the registry
   fails. The pod's readiness never waits for this: a dead registry delays only the registration;
3. ``set_weight(f)`` along ``w(t)`` of helper/warmup.py, measured from the registration (that is when traffic
   from the registry's consumers starts), in at most :data:`MAX_UPDATES` updates over the window; a failed update
   is logged and the next one corrects it.

The whole step runs inside the agent's start-up task, so the offline sequence cancels it first thing: no
registration or weight update can race the deregistration.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence

from helper import aio, jsonlog
from helper.agent.state import AgentState
from helper.backoff import Backoff
from helper.config import AgentConfig
from helper.registries.base import OnlineRegistry, Registry, is_online
from helper.warmup import Curve, fraction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_UPDATES = 20
"""Weight updates per ramp at most: enough for a smooth curve, few enough to cost the registry nothing."""
MIN_STEP = 0.01
"""Updates that would change the fraction by less than this are skipped (the floor of a k > 1 curve)."""


def ramp(window: float, curve: Curve, max_updates: int = MAX_UPDATES) -> list[tuple[float, float]]:
    """The weight updates after registration: (seconds after it, fraction of the full weight), ending at 1.0.

    Evenly spaced in time, ``window / max_updates`` apart; points where the curve barely moves are dropped, the
    last one (``t = window``, 1.0) always stays. No window: no updates (registration is at the full weight).
    """
    if not window > 0:
        return []
    points: list[tuple[float, float]] = []
    last = fraction(0.0, window, curve)
    for step in range(1, max_updates + 1):
        at = window * step / max_updates
        value = 1.0 if step == max_updates else fraction(at, window, curve)
        if value - last >= MIN_STEP or step == max_updates:
            points.append((round(at, 3), round(value, 6)))
            last = value
    return points


def online_registries(registries: Sequence[Registry]) -> list[OnlineRegistry]:
    return [registry for registry in registries if is_online(registry)]


def bind(registries: Sequence[Registry], state: AgentState) -> None:
    """Let registries count their calls into the agent's metrics (``count(registry, operation, result)``)."""
    for registry in registries:
        if hasattr(registry, "count"):
            registry.count = state.count_registry


async def alongside(
    startup: Coroutine[Any, Any, None], config: AgentConfig, state: AgentState, registries: Sequence[Registry]
) -> None:
    """Run the agent's start-up with the registries' online step beside it (the agent's start task).

    Cancelled by the offline sequence: start-up, hold, registration and ramp all stop together.
    """
    online = online_registries(registries)
    if not online:
        await startup
        return
    bind(registries, state)
    loop = aio.get_running_loop()
    ready: aio.Future[None] = loop.create_future()

    def on_ready() -> None:
        if not ready.done():
            ready.set_result(None)

    state.on_ready.append(on_ready)
    holding = loop.create_task(hold(online))
    starting = loop.create_task(startup)

    async def register_when_ready() -> None:
        await ready
        await bring_online(config, online, holding)

    registering = loop.create_task(register_when_ready())
    tasks = (starting, registering, holding)
    try:
        await aio.gather(starting, registering)
    finally:
        for task in tasks:
            task.cancel()
        await aio.gather(*tasks, return_exceptions=True)


async def hold(registries: Sequence[Registry]) -> None:
    """Run every registry's ``hold()`` until cancelled (a failing one is logged, never fatal)."""
    results = await aio.gather(*(r.hold() for r in online_registries(registries)), return_exceptions=True)
    for registry, result in zip(online_registries(registries), results, strict=True):
        if isinstance(result, Exception):
            jsonlog.error("registry hold failed unexpectedly", registry=registry.name, error=repr(result))


async def bring_online(config: AgentConfig, registries: Sequence[Registry], holding: aio.Task[None]) -> None:
    """After start-up made the pod ready: the register delay, then register and ramp every online registry."""
    online = online_registries(registries)
    if not online:
        holding.cancel()
        return
    if config.register_delay > 0:
        jsonlog.info("registries: waiting for the register delay", delay_s=config.register_delay)
        await aio.sleep(config.register_delay)
    holding.cancel()
    await aio.gather(holding, return_exceptions=True)
    await aio.gather(*(_one(config, registry) for registry in online))


async def _one(config: AgentConfig, registry: OnlineRegistry) -> None:
    loop = aio.get_running_loop()
    backoff = Backoff(first=0.5, cap=10.0)
    first = fraction(0.0, config.warmup_window, config.curve)
    attempts = 0
    while True:
        attempts += 1
        try:
            await registry.register(first)
            break
        except Exception as error:  # retried: a registry that is down now may be back in a moment
            _report(registry, "register", error)
        await aio.sleep(backoff.next_delay())
    if attempts > 1:
        jsonlog.info("registry: registered after retries", registry=registry.name, attempts=attempts)
    started = loop.time()
    for at, value in ramp(config.warmup_window, config.curve):
        await aio.sleep(max(0.0, started + at - loop.time()))
        try:
            await registry.set_weight(value)
        except Exception as error:
            _report(registry, "weight", error)


def _report(registry: OnlineRegistry, operation: str, error: Exception) -> None:
    report = getattr(registry, "report", None)
    if report is not None and isinstance(error, OSError):
        report(operation, error)  # the registry logs each distinct problem once
    else:
        jsonlog.warning(f"registry {operation} failed", registry=registry.name, error=repr(error))
