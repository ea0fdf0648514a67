"""The helper's event loop: the part of asyncio it uses, in about 1,400 lines and without asyncio's imports.

Why not asyncio: the agent runs once per pod, and ``import asyncio`` costs about 3.5 MiB of its 20 MB budget once
TLS is loaded (asyncio brings ``inspect``, ``ast``, ``dis``, ``tokenize``, ``logging``, ``concurrent.futures``,
``subprocess`` and ``typing`` with it; its TLS protocol adds per-connection buffers on top). Measured on this
machine: a minimal asyncio client making 400 TLS requests sits at 23.0 MiB, the same requests over blocking sockets
at 18.0 MiB (``python -m tests.bench.measure_tls_rss``, docs/performance.md).

Names and semantics follow asyncio's (``aio.timeout``, ``aio.gather``, ``aio.StreamReader``...), so the code
reads like asyncio code and a reader's knowledge of asyncio applies; tests/helper/test_aio.py pins the semantics the
helper relies on, each against asyncio's own behaviour.

- loop.py: futures, tasks, timers, socket readiness, signals, :func:`run`;
- tasks.py: sleep, timeout, wait_for, gather, shield, wait, TaskGroup, Event, Lock;
- streams.py: StreamReader/StreamWriter over plain or TLS sockets, open_connection, start_server.
"""

from helper.aio.loop import (
    CancelledError,
    Future,
    InvalidStateError,
    Loop,
    Task,
    create_task,
    current_task,
    get_running_loop,
    run,
)
from helper.aio.streams import (
    IncompleteReadError,
    LimitOverrunError,
    Server,
    StreamReader,
    StreamWriter,
    open_connection,
    start_server,
)
from helper.aio.tasks import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    Event,
    Lock,
    TaskGroup,
    ensure_future,
    gather,
    shield,
    sleep,
    timeout,
    wait,
    wait_for,
)

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "CancelledError",
    "Event",
    "Future",
    "IncompleteReadError",
    "InvalidStateError",
    "LimitOverrunError",
    "Lock",
    "Loop",
    "Server",
    "StreamReader",
    "StreamWriter",
    "Task",
    "TaskGroup",
    "create_task",
    "current_task",
    "ensure_future",
    "gather",
    "get_running_loop",
    "open_connection",
    "run",
    "shield",
    "sleep",
    "start_server",
    "timeout",
    "wait",
    "wait_for",
]
