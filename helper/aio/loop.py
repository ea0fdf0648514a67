"""The event loop: futures, tasks driving coroutines, timers, socket readiness, signals.

Semantics follow asyncio's where the helper relies on them, so code reads as asyncio code does:

- a :class:`Future` is awaited by yielding it to the :class:`Task` that drives the coroutine; its done callbacks
  run on the next turn of the loop, never inside ``set_result``;
- ``Task.cancel()`` cancels the future the task waits on (or throws :class:`CancelledError` at the next step),
  and counts requests, so :func:`helper.aio.timeout` can tell its own cancellation from another's (``uncancel``);
- one loop per thread at most, found with :func:`get_running_loop`; :func:`run` makes one, runs a coroutine to
  completion, cancels what is left, restores the signal handlers it installed and closes.

Only what the helper uses is here. A task whose exception nobody retrieved is reported on stderr when collected,
as asyncio logs it, so a failing background task is never silent.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import selectors
import signal
import socket
import time
from _thread import get_ident
from collections import deque

from helper import jsonlog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Generator
    from typing import Any, Generic, TypeVar

    _T = TypeVar("_T")

    class _Generic(Generic[_T]):
        """For the type checker, futures and tasks are generic in their result."""

else:

    class _Generic:
        """At run time ``Future[int]`` is just ``Future``: generics without importing ``typing`` (0.6 MiB)."""

        __slots__ = ()

        def __class_getitem__(cls, item: object) -> type:
            return cls

    _T = None


class CancelledError(BaseException):
    """The task was cancelled (a BaseException, as asyncio's: ``except Exception`` must not swallow it)."""


class InvalidStateError(Exception):
    """A result was asked for too early, or set twice."""


_PENDING, _CANCELLED, _FINISHED = 0, 1, 2
_running: dict[int, Loop] = {}  # thread id -> the loop running in it


def get_running_loop() -> Loop:
    """The loop running in this thread; RuntimeError outside of one (as asyncio)."""
    loop = _running.get(get_ident())
    if loop is None:
        raise RuntimeError("no running event loop")
    return loop


def current_task() -> Task | None:
    return get_running_loop().current


def create_task(coro: Coroutine[Any, Any, _T], *, name: str | None = None) -> Task[_T]:
    return get_running_loop().create_task(coro, name=name)


class Handle:
    """A callback scheduled on the loop; ``cancel()`` before it runs prevents it."""

    __slots__ = ("args", "callback", "cancelled", "timers", "when")

    def __init__(
        self, callback: Callable[..., object], args: tuple[Any, ...], when: float = 0.0, timers: Loop | None = None
    ) -> None:
        self.callback = callback
        self.args = args
        self.when = when
        self.cancelled = False
        self.timers = timers  # the loop whose timer heap holds this handle, until it is due or purged

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            if self.timers is not None:
                self.timers._timer_cancelled()
            self.callback, self.args = _noop, ()  # drop references now: a cancelled timer may wait long in the heap

    def __lt__(self, other: Handle) -> bool:  # the timer heap's order
        return self.when < other.when

    def _run(self) -> None:
        try:
            self.callback(*self.args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as error:  # as asyncio: a failing callback is reported, the loop goes on
            _report(f"exception in callback {self.callback!r}", error)


def _noop() -> None:
    return None


PURGE_AT = 100
"""Cancelled timers the heap may hold before they are purged (if they are also half of it), as asyncio does: every
``timeout()`` that ends in time leaves one behind, due only at its deadline (an idle connection's 60 s)."""


def _report(message: str, error: BaseException) -> None:
    """One JSON log line, as every other line the helper writes (the traceback as a field).

    Also called from ``Future.__del__``, possibly while the interpreter shuts down, when importing fails: then the
    line goes without its traceback, and never raises.
    """
    try:
        import traceback  # only on this error path

        trace = "".join(traceback.format_exception(error))
    except Exception:  # shutting down: imports no longer work
        trace = ""
    jsonlog.error(message, error=repr(error), traceback=trace)


class Future(_Generic[_T]):
    """A result that will be set later; awaiting it suspends the awaiting task until then."""

    __slots__ = ("__weakref__", "_callbacks", "_exception", "_loop", "_result", "_state", "_unretrieved")

    def __init__(self, loop: Loop | None = None) -> None:
        self._loop = loop or get_running_loop()
        self._state = _PENDING
        self._result: _T | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[Future], object]] = []
        self._unretrieved = False

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def result(self) -> _T:
        if self._state == _CANCELLED:
            raise CancelledError()
        if self._state == _PENDING:
            raise InvalidStateError("result is not set")
        self._unretrieved = False
        if self._exception is not None:
            raise self._exception.with_traceback(self._exception.__traceback__)
        return self._result  # type: ignore[return-value]  # _FINISHED without exception: set_result ran

    def exception(self) -> BaseException | None:
        if self._state == _CANCELLED:
            raise CancelledError()
        if self._state == _PENDING:
            raise InvalidStateError("exception is not set")
        self._unretrieved = False
        return self._exception

    def add_done_callback(self, callback: Callable[[Future], object]) -> None:
        if self._state != _PENDING:
            self._loop.call_soon(callback, self)
        else:
            self._callbacks.append(callback)

    def remove_done_callback(self, callback: Callable[[Future], object]) -> None:
        self._callbacks = [c for c in self._callbacks if c != callback]

    def set_result(self, result: _T) -> None:
        if self._state != _PENDING:
            raise InvalidStateError("result already set")
        self._result = result
        self._finish(_FINISHED)

    def set_exception(self, exception: BaseException) -> None:
        if self._state != _PENDING:
            raise InvalidStateError("result already set")
        if isinstance(exception, type):
            exception = exception()
        self._exception = exception
        self._unretrieved = True
        self._finish(_FINISHED)

    def cancel(self) -> bool:
        if self._state != _PENDING:
            return False
        self._finish(_CANCELLED)
        return True

    def _finish(self, state: int) -> None:
        self._state = state
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            self._loop.call_soon(callback, self)

    def __await__(self) -> Generator[Any, None, _T]:
        if self._state == _PENDING:
            yield self  # the driving Task waits for us
        return self.result()

    __iter__ = __await__

    def __del__(self) -> None:
        if self._unretrieved and self._exception is not None:
            _report(f"exception of {self!r} was never retrieved", self._exception)


class Task(Future[_T]):
    """Drives a coroutine: each step runs it until it awaits a pending future, then resumes it when that is done."""

    __slots__ = ("_cancels", "_coro", "_must_cancel", "_waiting", "name")

    def __init__(self, coro: Coroutine[Any, Any, _T], loop: Loop, name: str | None = None) -> None:
        super().__init__(loop)
        self._coro = coro
        self._waiting: Future | None = None
        self._must_cancel = False
        self._cancels = 0
        self.name = name or getattr(coro, "__qualname__", "task")
        loop._tasks.add(self)
        loop.call_soon(self._step)

    def __repr__(self) -> str:
        return f"<Task {self.name} {('pending', 'cancelled', 'done')[self._state]}>"

    def cancel(self) -> bool:
        if self._state != _PENDING:
            return False
        self._cancels += 1
        if self._waiting is not None and self._waiting.cancel():
            return True  # its callback resumes us; awaiting it raises CancelledError
        self._must_cancel = True
        return True

    def uncancel(self) -> int:
        if self._cancels > 0:
            self._cancels -= 1
            if self._cancels == 0:
                self._must_cancel = False
        return self._cancels

    def _step(self, _: object = None) -> None:
        if self._state != _PENDING:
            return
        error: BaseException | None = None
        if self._must_cancel:
            self._must_cancel = False
            error = CancelledError()
        self._waiting = None
        loop = self._loop
        loop.current = self
        try:
            yielded = self._coro.send(None) if error is None else self._coro.throw(error)
        except StopIteration as stop:
            self._result = stop.value
            self._finish(_FINISHED)
        except CancelledError:
            self._finish(_CANCELLED)
        except (SystemExit, KeyboardInterrupt) as exit_error:
            self._exception = exit_error
            self._finish(_FINISHED)
            raise
        except BaseException as failure:
            self._exception = failure
            self._unretrieved = True
            self._finish(_FINISHED)
        else:
            if isinstance(yielded, Future):
                self._waiting = yielded
                yielded.add_done_callback(self._step)
                if self._must_cancel and yielded.cancel():
                    self._must_cancel = False
            elif yielded is None:  # a bare yield (sleep(0)): run again on the next turn
                loop.call_soon(self._step)
            else:
                self._coro.close()
                self._exception = RuntimeError(f"task {self.name} yielded {yielded!r}, not a future")
                self._unretrieved = True
                self._finish(_FINISHED)
        finally:
            loop.current = None
        if self._state != _PENDING:
            loop._tasks.discard(self)


class Loop:
    """One thread's loop: a ready queue, a timer heap and a selector. Not thread-safe except
    :meth:`call_soon_threadsafe` (and the signal handlers it installs)."""

    def __init__(self) -> None:
        self._ready: deque[Handle] = deque()
        self._timers: list[Handle] = []
        self._cancelled_timers = 0
        self._selector = selectors.DefaultSelector()
        self._io: dict[int, tuple[list[Future], list[Future]]] = {}  # fd -> (waiting to read, waiting to write)
        self._tasks: set[Task] = set()  # strong references: a task runs to its end even if nobody holds it
        self._signals: dict[int, Any] = {}  # signal -> the handler it had before
        self.current: Task | None = None
        self._wake_in, self._wake_out = socket.socketpair()
        for end in (self._wake_in, self._wake_out):
            end.setblocking(False)
        self._selector.register(self._wake_in.fileno(), selectors.EVENT_READ, None)

    # --- scheduling --------------------------------------------------------------------------------------------

    def time(self) -> float:
        return time.monotonic()

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Handle:
        handle = Handle(callback, args)
        self._ready.append(handle)
        return handle

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Handle:
        return self.call_at(self.time() + delay, callback, *args)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Handle:
        handle = Handle(callback, args, when, self)
        heapq.heappush(self._timers, handle)
        return handle

    def _timer_cancelled(self) -> None:
        self._cancelled_timers += 1
        if self._cancelled_timers > PURGE_AT and self._cancelled_timers * 2 > len(self._timers):
            self._timers = [handle for handle in self._timers if not handle.cancelled]
            heapq.heapify(self._timers)
            self._cancelled_timers = 0

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Handle:
        """Schedule from another thread (deque.append is atomic) and wake the selector."""
        if self._selector is None:
            raise RuntimeError("event loop is closed")
        handle = self.call_soon(callback, *args)
        self._wake()
        return handle

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (already woken) or closed
            self._wake_out.send(b"\0")

    def create_future(self) -> Future[Any]:
        return Future(self)

    def create_task(self, coro: Coroutine[Any, Any, _T], *, name: str | None = None) -> Task[_T]:
        return Task(coro, self, name)

    # --- sockets -----------------------------------------------------------------------------------------------

    def wait_readable(self, fd: int) -> Future:
        return self._wait_io(fd, 0)

    def wait_writable(self, fd: int) -> Future:
        return self._wait_io(fd, 1)

    def _wait_io(self, fd: int, direction: int) -> Future:
        future: Future[None] = Future(self)
        self._io.setdefault(fd, ([], []))[direction].append(future)
        self._update_io(fd)
        future.add_done_callback(lambda _: self._forget_waiter(fd, direction, future))
        return future

    def _forget_waiter(self, fd: int, direction: int, future: Future) -> None:
        waiters = self._io.get(fd)
        if waiters is not None and future in waiters[direction]:
            waiters[direction].remove(future)
            self._update_io(fd)

    def _update_io(self, fd: int) -> None:
        readers, writers = self._io.get(fd, ((), ()))
        mask = (selectors.EVENT_READ if readers else 0) | (selectors.EVENT_WRITE if writers else 0)
        registered = fd in self._selector.get_map()
        if not mask:
            self._io.pop(fd, None)
            if registered:
                self._selector.unregister(fd)
        elif registered:
            self._selector.modify(fd, mask, None)
        else:
            self._selector.register(fd, mask, None)

    def forget_fd(self, fd: int) -> None:
        """Before closing a socket: stop watching it and fail whoever waits on it (their socket is gone)."""
        waiters = self._io.pop(fd, ((), ()))
        if fd in self._selector.get_map():
            self._selector.unregister(fd)
        for future in (*waiters[0], *waiters[1]):
            if not future.done():
                future.set_exception(ConnectionAbortedError("the socket was closed"))
                future._unretrieved = False

    async def sock_connect(self, sock: socket.socket, address: tuple[Any, ...]) -> None:
        """Connect a non-blocking socket (a numeric address: no name resolution here)."""
        code = sock.connect_ex(address)
        if code in (0, getattr(os, "EISCONN", -1)):
            return
        if code not in (getattr(os, "EINPROGRESS", 115), getattr(os, "EWOULDBLOCK", 11), getattr(os, "EAGAIN", 11)):
            raise OSError(code, os.strerror(code))
        fd = sock.fileno()
        try:
            await self.wait_writable(fd)
        except BaseException:
            self.forget_fd(fd)
            raise
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise _connect_error(code, address)

    async def sock_recv(self, sock: socket.socket, size: int) -> bytes:
        while True:
            try:
                return sock.recv(size)
            except (BlockingIOError, InterruptedError):
                await self.wait_readable(sock.fileno())

    async def sock_sendall(self, sock: socket.socket, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[sock.send(view):]
            except (BlockingIOError, InterruptedError):
                await self.wait_writable(sock.fileno())

    # --- signals -----------------------------------------------------------------------------------------------

    def add_signal_handler(self, signum: int, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop when ``signum`` arrives (the handler itself only schedules it; the
        wake-up descriptor interrupts a sleeping selector)."""

        def handler(_signum: int, _frame: object) -> None:
            self.call_soon(callback, *args)

        if signum not in self._signals:
            self._signals[signum] = signal.getsignal(signum)
        signal.set_wakeup_fd(self._wake_out.fileno(), warn_on_full_buffer=False)
        signal.signal(signum, handler)

    # --- running -----------------------------------------------------------------------------------------------

    def run_until_complete(self, future: Future) -> None:
        while not future.done():
            self._run_once()

    def _run_once(self) -> None:
        if self._ready:
            timeout: float | None = 0.0
        elif self._timers:
            timeout = max(0.0, self._timers[0].when - self.time())
        else:
            timeout = None
        for key, mask in self._selector.select(timeout):
            fd = key.fd
            if fd == self._wake_in.fileno():
                self._drain_wakeups()
                continue
            waiters = self._io.get(fd)
            if waiters is None:
                continue
            for direction, event in ((0, selectors.EVENT_READ), (1, selectors.EVENT_WRITE)):
                if mask & event:
                    for future in waiters[direction]:
                        if not future.done():
                            future.set_result(None)
        now = self.time()
        while self._timers and self._timers[0].when <= now:
            handle = heapq.heappop(self._timers)
            handle.timers = None
            if handle.cancelled:
                self._cancelled_timers -= 1
            else:
                self._ready.append(handle)
        for _ in range(len(self._ready)):
            handle = self._ready.popleft()
            if not handle.cancelled:
                handle._run()

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_in.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        for signum, previous in self._signals.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        if self._signals:
            signal.set_wakeup_fd(-1)
        self._signals.clear()
        self._selector.close()
        self._wake_in.close()
        self._wake_out.close()


def _connect_error(code: int, address: tuple[Any, ...]) -> OSError:
    """What a blocking connect raises for ``code``: OSError(errno, ...) picks the subclass (ConnectionRefusedError
    for ECONNREFUSED), as asyncio's message names the address."""
    return OSError(code, f"Connect call failed {address[:2]}: {os.strerror(code)}")


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """Run ``main`` on a new loop in this thread and return its result (or raise its exception), as asyncio.run:
    tasks still pending afterwards are cancelled and given their chance to finish."""
    ident = get_ident()
    if ident in _running:
        raise RuntimeError("run() cannot be called from a running event loop")
    loop = Loop()
    _running[ident] = loop
    try:
        task = loop.create_task(main)
        try:
            loop.run_until_complete(task)
        except BaseException:
            if not task.done():
                task.cancel()
            raise
        finally:
            _cancel_all(loop)
        return task.result()
    finally:
        del _running[ident]
        loop.close()


def _cancel_all(loop: Loop) -> None:
    left = [task for task in loop._tasks if not task.done()]
    if not left:
        return
    for task in left:
        task.cancel()
    everything: Future[None] = Future(loop)
    remaining = len(left)

    def one_done(task: Future) -> None:
        nonlocal remaining
        remaining -= 1
        if not task.cancelled():
            task.exception()  # retrieved here: run() is ending anyway
        if remaining == 0 and not everything.done():
            everything.set_result(None)

    for task in left:
        task.add_done_callback(one_done)
    loop.run_until_complete(everything)
