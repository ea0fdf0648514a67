"""A keyed work queue with de-duplication, delays and per-key rate limiting: client-go's workqueue, as
controller-runtime uses it, for loops that react to watch events.

Watch handlers run on the reflector's thread and must be quick, so they only *name* what needs attention (a key:
a pod's UID, ``(namespace, name)``, ...); workers look the object up in the watch cache and act on its current
state. That keeps the rules simple and safe:

- a key queued several times before a worker takes it is processed once (the worker reads the latest state
  anyway);
- a key is never processed by two workers at once; one re-added while it is being processed is queued again
  when :meth:`WorkQueue.done` is called, so a change that arrived mid-processing is not lost;
- :meth:`WorkQueue.add_after` keeps one timer per key, the earliest asked for (a worker that finds it is too
  early re-adds the key with the remaining delay; :meth:`WorkQueue.add` is "now", which beats any timer). The
  timers are a heap that the waiting getters sleep on: thousands of pending keys cost no thread each, and no
  polling;
- :meth:`WorkQueue.add_rate_limited` retries a failing key after its own exponential backoff (reset by
  :meth:`WorkQueue.forget` after a success) and no sooner than an overall token bucket allows, so an outage
  with a thousand failing keys does not end in a thousand requests at once.

Workers are the caller's threads (:func:`run_workers` starts N of them); their number bounds how many keys are
processed, and so how many writes are in flight, at once. :meth:`WorkQueue.shut_down` drops everything queued or
waiting and wakes every getter; what is being processed finishes.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from helper.backoff import PLUS_MINUS_20, Backoff
from webhook.kube.ratelimit import TokenBucket

log = logging.getLogger("lanes.kube.workqueue")

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down: the worker should return."""


def default_backoff() -> Backoff:
    return Backoff(first=0.5, cap=60.0, jitter=PLUS_MINUS_20)


class WorkQueue(Generic[K]):
    """Keys to process; thread-safe. See the module docstring for the rules."""

    def __init__(
        self,
        name: str,
        *,
        backoff: Callable[[], Backoff] = default_backoff,
        rate: float = 10.0,
        burst: int = 100,
    ) -> None:
        self.name = name
        self._new_backoff = backoff
        self._bucket = TokenBucket(rate, burst)
        self._cond = threading.Condition()
        self._queue: collections.deque[K] = collections.deque()
        self._dirty: set[K] = set()  # queued, or to be queued again once its processing is done
        self._processing: set[K] = set()
        self._heap: list[tuple[float, int, K]] = []  # (due, sequence, key); entries not in _due are stale
        self._due: dict[K, float] = {}  # the one live timer of each waiting key (monotonic)
        self._sequence = itertools.count()
        self._failures: dict[K, Backoff] = {}
        self._shutting_down = False

    # -- adding ----------------------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Process ``key`` as soon as a worker is free (once, however often it is added before that)."""
        with self._cond:
            self._add(key)

    def add_after(self, key: K, delay: float) -> None:
        """Process ``key`` in ``delay`` seconds, or earlier if it is already due earlier."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutting_down or key in self._dirty:
                return  # due now (or as soon as its processing ends): earlier than any timer
            due = time.monotonic() + delay
            current = self._due.get(key)
            if current is not None and current <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._sequence), key))
            if len(self._heap) > 64 and len(self._heap) > 4 * len(self._due):
                self._compact()
            self._cond.notify()

    def add_rate_limited(self, key: K, *, at_least: float = 0.0) -> float:
        """Retry ``key`` after its next backoff step (and the overall rate limit, and ``at_least``, e.g. the
        server's Retry-After); returns the delay."""
        with self._cond:
            if self._shutting_down:
                return 0.0
            backoff = self._failures.get(key)
            if backoff is None:
                backoff = self._failures[key] = self._new_backoff()
            delay = max(backoff.next_delay(), self._bucket.reserve(), at_least)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """``key`` succeeded (or is gone): its next :meth:`add_rate_limited` starts from the first step again."""
        with self._cond:
            self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        """Rate-limited retries of ``key`` since it was last forgotten."""
        with self._cond:
            backoff = self._failures.get(key)
            return backoff.attempts if backoff is not None else 0

    # -- processing ------------------------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> K:
        """The next key to process (call :meth:`done` with it afterwards); blocks until there is one. Raises
        :class:`ShutDown` once the queue is shut down, ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._shutting_down:
                    raise ShutDown(self.name)
                now = time.monotonic()
                self._promote(now)
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                wait = self._heap[0][0] - now if self._heap else None
                if deadline is not None:
                    if now >= deadline:
                        raise TimeoutError(f"work queue {self.name}: nothing to do for {timeout}s")
                    wait = deadline - now if wait is None else min(wait, deadline - now)
                self._cond.wait(wait)

    def done(self, key: K) -> None:
        """Processing ``key`` has ended; if it was added meanwhile, it is queued again now."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty and not self._shutting_down:
                self._queue.append(key)
                self._cond.notify()

    def shut_down(self) -> None:
        """Drop every queued and waiting key and wake every getter (they raise :class:`ShutDown`); keys being
        processed finish, and nothing is added any more."""
        with self._cond:
            self._shutting_down = True
            self._queue.clear()
            self._dirty.clear()
            self._heap.clear()
            self._due.clear()
            self._failures.clear()
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        """Keys ready to be processed now (not those waiting for a timer, nor those being processed)."""
        with self._cond:
            self._promote(time.monotonic())
            return len(self._queue)

    # -- under the lock --------------------------------------------------------------------------------------

    def _add(self, key: K) -> None:
        if self._shutting_down:
            return
        self._due.pop(key, None)  # now beats any timer: its heap entry goes stale
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # done() queues it again
        self._queue.append(key)
        self._cond.notify()

    def _promote(self, now: float) -> None:
        """Move the keys whose timer is due into the queue."""
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            if self._due.get(key) == due:
                del self._due[key]
                self._add(key)

    def _compact(self) -> None:
        """Drop stale heap entries (timers replaced by earlier ones, or superseded by :meth:`add`)."""
        self._heap = [entry for entry in self._heap if self._due.get(entry[2]) == entry[0]]
        heapq.heapify(self._heap)


def run_workers(
    queue: WorkQueue[K], count: int, handle: Callable[[K], None], *, name: str | None = None
) -> list[threading.Thread]:
    """Start ``count`` daemon threads that process keys with ``handle(key)`` until ``queue`` is shut down.

    The handler decides what happens to its key next (:meth:`WorkQueue.forget` after a success,
    :meth:`WorkQueue.add_after` or :meth:`WorkQueue.add_rate_limited` to come back later); a handler that raises
    is logged and its key retried with backoff, so a surprise does not drop the key for good.
    """
    label = name or queue.name

    def work() -> None:
        while True:
            try:
                key = queue.get()
            except ShutDown:
                return
            try:
                handle(key)
            except Exception:
                log.exception("work item failed; retrying with backoff", extra={"queue": label, "key": str(key)})
                queue.add_rate_limited(key)
            finally:
                queue.done(key)

    threads = [threading.Thread(target=work, name=f"lanes-{label}-{index}", daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    return threads
