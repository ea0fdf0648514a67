"""The offline sequence behind /prestop: draining -> deregister -> broadcast -> drain, once per pod.

The kubelet calls each app container's preStop hook (an httpGet to the agent's /prestop) when the pod is deleted,
and sends that container SIGTERM only after the hook returns. Holding the response for the drain therefore keeps
the app serving while the rest of the system stops sending it traffic:

1. *draining*: the online side stops (no more start-up or watching the app); /ready keeps answering 200 if the pod
   was ready (it stays *serving*: kube-proxy falls back to serving terminating endpoints when no ready ones are
   left) and turns 503 when the drain ends;
2. *deregister*: every configured registry, in parallel, bounded by the drain (at least 1 s each);
3. *broadcast*: the going-offline POST to every notify URL, in the background, cut off at the end of the drain;
4. *drain*: wait until ``LANES_DRAIN`` seconds after the first call, then answer every pending call.

A pod with several app containers calls /prestop once per container, concurrently: all calls share the one
sequence and return together when its drain ends; a call that arrives after it completed returns at once. The
sequence runs in its own task, so a caller hanging up does not cancel it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from helper import aio, jsonlog
from helper.agent import notify
from helper.agent.state import AgentState
from helper.config import AgentConfig
from helper.record import field, record
from helper.registries.base import Registry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MIN_DEREGISTER_SECONDS = 1.0


@record
class OfflineSequence:
    config: AgentConfig
    state: AgentState
    registries: list[Registry]
    on_start: Callable[[], None] = lambda: None
    """Called first thing (the agent uses it to stop a start-up still in progress)."""
    _task: aio.Task[dict[str, Any]] | None = field(default=None, init=False)

    @property
    def started(self) -> bool:
        return self._task is not None

    async def run(self) -> tuple[dict[str, Any], bool]:
        """Start the sequence or join the running one; returns (summary, whether this call joined)."""
        joined = self._task is not None
        if self._task is None:
            self._task = aio.get_running_loop().create_task(self._sequence())
        return await aio.shield(self._task), joined

    async def wait(self) -> None:
        """Wait for a started sequence to complete (SIGTERM during a drain)."""
        if self._task is not None:
            await aio.shield(self._task)

    def rearm(self) -> None:
        """After a completed sequence whose container came back (a restart, not the pod's end): the next
        /prestop runs a new sequence."""
        if self._task is not None and self._task.done():
            self._task = None

    async def _sequence(self) -> dict[str, Any]:
        loop = aio.get_running_loop()
        config, state = self.config, self.state
        started = loop.time()
        started_wall = time.time()
        drain_end = started + config.drain
        phases: list[dict[str, Any]] = []

        def mark(phase: str, **fields: Any) -> None:
            phases.append({"phase": phase, "at": round(time.time(), 3), "t": round(loop.time() - started, 3)})
            phases[-1].update(fields)

        try:
            self.on_start()
        except Exception as error:  # stopping start-up is a courtesy; the drain must happen regardless
            jsonlog.error("could not stop start-up", error=repr(error))
        state.enter("draining", drain_s=config.drain)
        mark("draining")

        budget = max(drain_end - loop.time(), MIN_DEREGISTER_SECONDS)
        registries = await aio.gather(*(self._deregister(registry, budget) for registry in self.registries))
        mark("deregistered", registries=list(registries))

        results = [notify.NotifyResult(str(url)) for url in config.notify]
        broadcast: aio.Task[None] | None = None
        if config.notify:
            body = notify.payload(
                config.identity, reason="prestop", drain=config.drain, drain_ends_at=started_wall + config.drain
            )
            broadcast = loop.create_task(notify.broadcast(config.notify, body, results, drain_end))
        mark("broadcast", receivers=len(results))

        await aio.sleep(max(drain_end - loop.time(), 0.0))
        if broadcast is not None:
            if not broadcast.done():
                broadcast.cancel()
            outcome = (await aio.gather(broadcast, return_exceptions=True))[0]
            if isinstance(outcome, Exception):
                jsonlog.error("broadcast failed unexpectedly", error=repr(outcome))
        for result in results:
            if result.result == "pending":
                result.result = "cut_off"
                result.error = result.error or "the drain ended first"
            state.count_notify(result.result)
        state.enter("drained")
        mark("drained")
        summary = {
            "pod": config.identity.pod,
            "drain_seconds": config.drain,
            "started_at": jsonlog.timestamp(started_wall),
            "finished_at": jsonlog.timestamp(),
            "phases": phases,
            "notify": [result.as_dict() for result in results],
        }
        jsonlog.info(
            "offline sequence complete",
            drain_s=config.drain,
            seconds=round(loop.time() - started, 3),
            notify={result.url: result.result for result in results},
            prestop_calls=state.prestop_calls,
        )
        return summary

    async def _deregister(self, registry: Registry, budget: float) -> dict[str, Any]:
        name = getattr(registry, "name", type(registry).__name__)
        try:
            async with aio.timeout(budget):
                detail = await registry.deregister()
            result = {"registry": name, "result": "ok", "detail": detail}
        except TimeoutError:
            result = {"registry": name, "result": "timeout", "detail": f"no answer within {budget:.1f}s"}
        except Exception as error:
            result = {"registry": name, "result": "error", "detail": repr(error)}
        self.state.count_deregister(name, str(result["result"]))
        (jsonlog.info if result["result"] == "ok" else jsonlog.warning)("deregistered", **result)
        return result
