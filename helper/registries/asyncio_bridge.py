"""Third-party registries are written for asyncio; the agent runs on helper.aio. This runs them side by side.

A registry plugin (entry point group ``lanes.registries``) keeps asyncio's API: ``asyncio.sleep``, aiohttp,
httpx's async client, whatever its registry's client library needs. Its coroutines run on an asyncio loop in one
daemon thread, started at the first call, and the agent awaits them from its own loop:

- a result or exception comes back as it was raised (``TimeoutError`` stays a timeout, and so on);
- when the agent's time for a call is up (the drain's budget), cancelling the awaiting task cancels the plugin's
  coroutine on its loop, as it would be cancelled under asyncio alone.

asyncio (about 3.5 MiB, see helper/footprint.py) is imported only here, so only pods that configure a
third-party registry pay for it.
"""

from __future__ import annotations

import asyncio
import threading

from helper import aio
from helper.aio.tasks import copy_outcome

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any


class _AsyncioThread:
    """One asyncio loop in a daemon thread, shared by every plugin of the process."""

    _loop: asyncio.AbstractEventLoop | None = None
    _lock = threading.Lock()

    @classmethod
    def loop(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="registry plugins (asyncio)", daemon=True).start()
                cls._loop = loop
            return cls._loop


async def run_on_asyncio(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run the coroutine ``make()`` returns on the plugins' asyncio loop; its outcome, awaited from aio."""
    here = aio.get_running_loop()
    outcome: aio.Future[Any] = here.create_future()
    running = asyncio.run_coroutine_threadsafe(make(), _AsyncioThread.loop())
    running.add_done_callback(lambda finished: here.call_soon_threadsafe(copy_outcome, finished, outcome))
    try:
        return await outcome
    except aio.CancelledError:
        running.cancel()  # cancels the plugin's task on its loop
        raise


class AsyncioRegistry:
    """A plugin's registry as the agent sees it: each call runs on the plugins' asyncio loop."""

    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin
        self.name = getattr(plugin, "name", type(plugin).__name__)

    async def deregister(self) -> str:
        result: str = await run_on_asyncio(self.plugin.deregister)
        return result


class AsyncioOnlineRegistry(AsyncioRegistry):
    """A plugin that also puts the pod into its registry (hold, register, set_weight)."""

    async def hold(self) -> None:
        await run_on_asyncio(self.plugin.hold)

    async def register(self, fraction: float) -> str:
        result: str = await run_on_asyncio(lambda: self.plugin.register(fraction))
        return result

    async def set_weight(self, fraction: float) -> None:
        await run_on_asyncio(lambda: self.plugin.set_weight(fraction))


def bridge(plugin: Any) -> AsyncioRegistry:
    """Wrap a plugin; an online registry (``base.is_online``) stays one."""
    from helper.registries.base import is_online

    return AsyncioOnlineRegistry(plugin) if is_online(plugin) else AsyncioRegistry(plugin)
