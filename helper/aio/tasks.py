"""Composing tasks, with asyncio's semantics: sleep, timeout, wait_for, gather, shield, wait, TaskGroup, Event, Lock.

Each mirrors the asyncio function of the same name in what the helper relies on:

- :class:`timeout` cancels the task when the time is up and turns *that* cancellation into ``TimeoutError`` on the
  way out (a cancellation from elsewhere stays a cancellation, told apart by ``Task.uncancel``);
- :func:`gather` fails fast with the first exception unless ``return_exceptions``; cancelling it cancels its
  children; :func:`shield` protects the inner awaitable from the outer task's cancellation;
- :class:`TaskGroup` waits for every child, cancels the rest when one fails, and raises an ``ExceptionGroup``.
"""

from __future__ import annotations

from collections import deque

from helper.aio.loop import CancelledError, Future, Task, current_task, get_running_loop

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Coroutine, Generator, Iterable
    from types import TracebackType
    from typing import Any, TypeVar

    _T = TypeVar("_T")

FIRST_COMPLETED = "FIRST_COMPLETED"
ALL_COMPLETED = "ALL_COMPLETED"


class _Yield:
    """Awaiting it gives the loop one turn (``sleep(0)``)."""

    def __await__(self) -> Generator[None, None, None]:
        yield None


def ensure_future(awaitable: Awaitable[_T]) -> Future[_T]:
    if isinstance(awaitable, Future):
        return awaitable
    return get_running_loop().create_task(awaitable)  # type: ignore[arg-type]


async def sleep(delay: float, result: Any = None) -> Any:
    if delay <= 0:
        await _Yield()
        return result
    loop = get_running_loop()
    future = loop.create_future()
    handle = loop.call_later(delay, _resolve, future, result)
    try:
        return await future
    finally:
        handle.cancel()


def _resolve(future: Future, result: Any) -> None:
    if not future.done():
        future.set_result(result)


class timeout:  # named and used as asyncio.timeout
    """``async with timeout(seconds):`` -- ``TimeoutError`` if the block has not finished in time (None: never)."""

    __slots__ = ("_delay", "_expired", "_handle", "_task")

    def __init__(self, delay: float | None) -> None:
        self._delay = delay
        self._task: Task | None = None
        self._handle: Any = None
        self._expired = False

    async def __aenter__(self) -> timeout:
        task = current_task()
        if task is None:
            raise RuntimeError("timeout() used outside a task")
        self._task = task
        if self._delay is not None:
            self._handle = task._loop.call_later(max(self._delay, 0.0), self._expire)
        return self

    def _expire(self) -> None:
        assert self._task is not None
        self._expired = True
        self._task.cancel()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        # Take back our own cancellation; if it was the only one, it is a timeout.
        ours = self._expired and self._task is not None and self._task.uncancel() == 0
        if ours and kind is not None and issubclass(kind, CancelledError):
            raise TimeoutError from error


async def wait_for(awaitable: Awaitable[_T], seconds: float | None) -> _T:
    """Await with a time limit; on timeout the awaitable (a task or future) is cancelled and TimeoutError raised."""
    future = ensure_future(awaitable)
    try:
        async with timeout(seconds):
            return await future
    finally:
        if not future.done():
            future.cancel()


class _Gathering(Future["list[Any]"]):
    """gather()'s outer future: cancelling it cancels the children."""

    __slots__ = ("_cancel_requested", "_children")

    def __init__(self, children: list[Future]) -> None:
        super().__init__()
        self._children = children
        self._cancel_requested = False

    def cancel(self) -> bool:
        if self.done():
            return False
        cancelled_any = False
        for child in self._children:
            if child.cancel():
                cancelled_any = True
        if cancelled_any:
            self._cancel_requested = True  # the result becomes CancelledError once the children are done
        return cancelled_any


def gather(*awaitables: Awaitable[Any], return_exceptions: bool = False) -> Future[list[Any]]:
    children = [ensure_future(a) for a in awaitables]
    outer = _Gathering(children)
    if not children:
        outer.set_result([])
        return outer
    pending = len(set(children))

    def child_done(child: Future) -> None:
        nonlocal pending
        pending -= 1
        if outer.done():
            if not child.cancelled():
                child.exception()  # retrieved: nobody else will
            return
        if not return_exceptions:
            if child.cancelled():
                outer.set_exception(CancelledError())
                return
            failure = child.exception()
            if failure is not None:
                outer.set_exception(failure)
                return
        if pending == 0:
            if outer._cancel_requested:
                outer.set_exception(CancelledError())
                return
            results: list[Any] = []
            for each in children:
                if each.cancelled():
                    results.append(CancelledError())
                else:
                    failure = each.exception()
                    results.append(failure if failure is not None else each.result())
            outer.set_result(results)

    for child in dict.fromkeys(children):
        child.add_done_callback(child_done)
    return outer


def copy_outcome(source: Any, target: Future[Any]) -> None:
    """Settle ``target`` as the finished ``source`` ended: result, exception or cancellation. ``source`` is one of
    ours or a ``concurrent.futures.Future`` (same methods); a target already done (cancelled by its waiter) is left
    as it is, and the source's exception counts as retrieved."""
    if target.done():
        if not source.cancelled():
            source.exception()
        return
    if source.cancelled():
        target.cancel()
        return
    failure = source.exception()
    if failure is not None:
        target.set_exception(failure)
    else:
        target.set_result(source.result())


def shield(awaitable: Awaitable[_T]) -> Future[_T]:
    """The outer future can be cancelled (and is, with the awaiting task); the inner one runs on."""
    inner = ensure_future(awaitable)
    if inner.done():
        return inner
    outer = inner._loop.create_future()
    inner.add_done_callback(lambda _: copy_outcome(inner, outer))
    return outer


async def wait(
    futures: Iterable[Future], *, timeout: float | None = None, return_when: str = ALL_COMPLETED
) -> tuple[set[Future], set[Future]]:
    """Wait (without cancelling anything) until all (or the first) are done or ``timeout`` passes."""
    everyone = set(futures)
    if not everyone:
        raise ValueError("wait() needs at least one future")
    loop = get_running_loop()
    waiter = loop.create_future()
    left = sum(1 for f in everyone if not f.done())

    def one_done(_: Future) -> None:
        nonlocal left
        left -= 1
        if not waiter.done() and (left <= 0 or return_when == FIRST_COMPLETED):
            waiter.set_result(None)

    if left and not (return_when == FIRST_COMPLETED and left < len(everyone)):
        handle = loop.call_later(timeout, _resolve, waiter, None) if timeout is not None else None
        for each in everyone:
            each.add_done_callback(one_done)
        try:
            await waiter
        finally:
            if handle is not None:
                handle.cancel()
            for each in everyone:
                each.remove_done_callback(one_done)
    done = {f for f in everyone if f.done()}
    return done, everyone - done


class TaskGroup:
    """``async with TaskGroup() as group: group.create_task(...)``: the block ends when every child has."""

    def __init__(self) -> None:
        self._tasks: set[Task] = set()
        self._errors: list[BaseException] = []
        self._waiter: Future | None = None
        self._aborting = False

    async def __aenter__(self) -> TaskGroup:
        return self

    def create_task(self, coro: Coroutine[Any, Any, _T]) -> Task[_T]:
        task = get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._child_done)
        return task

    def _abort(self) -> None:
        self._aborting = True
        for task in self._tasks:
            task.cancel()

    def _child_done(self, task: Future) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            failure = task.exception()
            if failure is not None:
                self._errors.append(failure)
                if not self._aborting:
                    self._abort()
        if not self._tasks and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        cancelled = kind is not None and issubclass(kind, CancelledError)
        if kind is not None and not self._aborting:
            self._abort()
        while self._tasks:
            self._waiter = get_running_loop().create_future()
            try:
                await self._waiter
            except CancelledError:
                cancelled = True
                if not self._aborting:
                    self._abort()
        if self._errors:
            raise BaseExceptionGroup("unhandled errors in a TaskGroup", self._errors)
        if cancelled:
            raise error if error is not None else CancelledError()


class Event:
    """Set once, awaited by many."""

    def __init__(self) -> None:
        self._set = False
        self._waiters: deque[Future] = deque()

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


class Lock:
    """Mutual exclusion between tasks, first come first served."""

    def __init__(self) -> None:
        self._locked = False
        self._waiters: deque[Future] = deque()

    def locked(self) -> bool:
        return self._locked

    async def acquire(self) -> bool:
        if not self._locked:
            self._locked = True
            return True
        waiter = get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved by release(), which hands the lock over: it stays locked, now ours
        except CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed to us just as we were cancelled
                self.release()
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return True

    def release(self) -> None:
        if not self._locked:
            raise RuntimeError("Lock is not acquired")
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)  # ownership passes directly: no newcomer can slip in between
                return
        self._locked = False

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *_: object) -> None:
        self.release()
