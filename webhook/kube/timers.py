"""A timer per key (per pending pod) without a thread per timer, and a bounded pool that runs what is due.

The readiness gate must fire ``register-delay`` after ``ContainersReady`` for each of possibly thousands of pods,
without polling and without thousands of threads: one thread sleeps until the earliest deadline in a heap, and
due callbacks run on at most ``workers`` threads, which also bounds how many PATCHes are in flight at once.
Re-scheduling a key replaces its timer; a stale heap entry is skipped when it comes up.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("lanes.controller.timers")


class TimerQueue:
    """``schedule(key, due, callback)``; ``due`` is a ``time.monotonic()`` value."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self._heap: list[tuple[float, int, str]] = []
        self._timers: dict[str, tuple[int, Callable[[], None]]] = {}
        self._sequence = itertools.count()
        self._condition = threading.Condition()
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"lanes-{name}")
        self._thread = threading.Thread(target=self._run, name=f"lanes-{name}-timers", daemon=True)
        self._thread.start()

    def schedule(self, key: str, due: float, callback: Callable[[], None]) -> None:
        with self._condition:
            if self._stopped:
                return
            sequence = next(self._sequence)
            self._timers[key] = (sequence, callback)
            heapq.heappush(self._heap, (due, sequence, key))
            self._condition.notify()

    def cancel(self, key: str) -> None:
        with self._condition:
            self._timers.pop(key, None)

    def scheduled(self, key: str) -> bool:
        with self._condition:
            return key in self._timers

    def __len__(self) -> int:
        with self._condition:
            return len(self._timers)

    def stop(self) -> None:
        """Drop every timer; callbacks already running finish, queued ones are cancelled."""
        with self._condition:
            self._stopped = True
            self._timers.clear()
            self._heap.clear()
            self._condition.notify()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while True:
            with self._condition:
                if self._stopped:
                    return
                now = time.monotonic()
                due: list[Callable[[], None]] = []
                while self._heap and self._heap[0][0] <= now:
                    _, sequence, key = heapq.heappop(self._heap)
                    current = self._timers.get(key)
                    if current is not None and current[0] == sequence:
                        del self._timers[key]
                        due.append(current[1])
                if not due:
                    timeout = self._heap[0][0] - now if self._heap else None
                    self._condition.wait(timeout)
                    continue
            for callback in due:
                try:
                    self._pool.submit(self._call, callback)
                except RuntimeError:  # pool shut down by stop()
                    return

    def _call(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            log.exception("timer callback failed", extra={"timers": self.name})
