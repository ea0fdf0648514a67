"""helper.aio keeps asyncio's semantics where the helper relies on them.

Each scenario runs twice, on asyncio and on helper.aio, and asserts the outcome it names on both: the expected
value is written here from asyncio's documented behaviour, and asyncio passing the same assertion shows the test
describes asyncio, not our implementation.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trustme

from helper import aio

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["asyncio", "helper.aio"])
def io(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


# --- tasks and time -------------------------------------------------------------------------------------------


def test_sleep_wakes_tasks_in_deadline_order(io: ModuleType) -> None:
    order: list[str] = []

    async def sleeper(name: str, delay: float) -> None:
        await io.sleep(delay)
        order.append(name)

    async def main() -> None:
        await io.gather(sleeper("late", 0.06), sleeper("early", 0.01), sleeper("now", 0))

    io.run(main())
    assert order == ["now", "early", "late"]


def test_timeout_turns_its_own_cancellation_into_timeout_error(io: ModuleType) -> None:
    async def main() -> tuple[str, float]:
        started = time.monotonic()
        try:
            async with io.timeout(0.05):
                await io.sleep(5)
        except TimeoutError:
            return "timeout", time.monotonic() - started
        return "finished", 0.0

    outcome, took = io.run(main())
    assert outcome == "timeout"
    assert took < 4  # it did not wait for the sleep


def test_timeout_that_does_not_fire_changes_nothing_and_none_never_fires(io: ModuleType) -> None:
    async def main() -> list[Any]:
        async with io.timeout(5):
            first = await io.sleep(0.01, "a")
        async with io.timeout(None):
            second = await io.sleep(0.01, "b")
        await io.sleep(0.01)  # no stray cancellation is left behind
        return [first, second]

    assert io.run(main()) == ["a", "b"]


def test_a_cancellation_from_outside_a_timeout_stays_a_cancellation(io: ModuleType) -> None:
    async def inner(seen: list[str]) -> None:
        try:
            async with io.timeout(5):
                await io.sleep(5)
        except TimeoutError:
            seen.append("timeout")
        except io.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> list[str]:
        seen: list[str] = []
        task = io.get_running_loop().create_task(inner(seen))
        await io.sleep(0.01)
        task.cancel()
        with pytest.raises(io.CancelledError):
            await task
        return seen

    assert io.run(main()) == ["cancelled"]


def test_wait_for_cancels_the_inner_task_on_timeout(io: ModuleType) -> None:
    async def main() -> tuple[bool, bool]:
        inner = io.get_running_loop().create_task(io.sleep(5))
        timed_out = False
        try:
            await io.wait_for(inner, 0.02)
        except TimeoutError:
            timed_out = True
        await io.sleep(0)
        return timed_out, inner.cancelled()

    assert io.run(main()) == (True, True)


def test_gather_keeps_order_fails_fast_and_can_return_exceptions(io: ModuleType) -> None:
    async def value(v: int, delay: float) -> int:
        await io.sleep(delay)
        return v

    async def boom(delay: float) -> int:
        await io.sleep(delay)
        raise ValueError("boom")

    async def main() -> tuple[list[int], str, list[Any]]:
        ordered = await io.gather(value(1, 0.03), value(2, 0.01), value(3, 0))
        try:
            await io.gather(value(1, 0.05), boom(0.01))
            failed = "no"
        except ValueError as error:
            failed = str(error)
        mixed = await io.gather(value(1, 0), boom(0), return_exceptions=True)
        return ordered, failed, [type(x).__name__ if isinstance(x, BaseException) else x for x in mixed]

    assert io.run(main()) == ([1, 2, 3], "boom", [1, "ValueError"])


def test_cancelling_a_gather_cancels_its_children(io: ModuleType) -> None:
    async def main() -> tuple[bool, list[bool]]:
        loop = io.get_running_loop()
        children = [loop.create_task(io.sleep(5)) for _ in range(3)]
        gathering = io.gather(*children)
        await io.sleep(0.01)
        gathering.cancel()
        try:
            await gathering
            raised = False
        except io.CancelledError:
            raised = True
        return raised, [child.cancelled() for child in children]

    assert io.run(main()) == (True, [True, True, True])


def test_shield_lets_the_inner_work_finish_when_the_waiter_is_cancelled(io: ModuleType) -> None:
    async def main() -> tuple[str, str]:
        loop = io.get_running_loop()
        inner = loop.create_task(io.sleep(0.05, "inner done"))

        async def waiter() -> str:
            return await io.shield(inner)

        outer = loop.create_task(waiter())
        await io.sleep(0.01)
        outer.cancel()
        try:
            await outer
            outer_state = "finished"
        except io.CancelledError:
            outer_state = "cancelled"
        return outer_state, await inner

    assert io.run(main()) == ("cancelled", "inner done")


def test_wait_returns_done_and_pending_without_cancelling(io: ModuleType) -> None:
    async def main() -> tuple[int, int, bool]:
        loop = io.get_running_loop()
        quick = loop.create_task(io.sleep(0.01))
        slow = loop.create_task(io.sleep(5))
        done, pending = await io.wait([quick, slow], timeout=0.1)
        still_running = not slow.done()
        slow.cancel()
        return len(done), len(pending), still_running

    assert io.run(main()) == (1, 1, True)


def test_task_group_waits_for_all_and_cancels_the_rest_when_one_fails(io: ModuleType) -> None:
    async def main() -> tuple[list[int], list[str], bool]:
        finished: list[int] = []

        async def work(n: int) -> None:
            await io.sleep(0.01 * n)
            finished.append(n)

        async with io.TaskGroup() as group:
            for n in (3, 1, 2):
                group.create_task(work(n))

        loop = io.get_running_loop()
        sibling: list[Any] = []

        async def fail() -> None:
            await io.sleep(0.01)
            raise KeyError("bad")

        try:
            async with io.TaskGroup() as group:
                sibling.append(group.create_task(io.sleep(5)))
                group.create_task(fail())
            errors: list[str] = []
        except BaseExceptionGroup as group_error:
            errors = [type(e).__name__ for e in group_error.exceptions]
        assert loop is io.get_running_loop()
        return finished, errors, sibling[0].cancelled()

    assert io.run(main()) == ([1, 2, 3], ["KeyError"], True)


def test_event_wakes_every_waiter_and_lock_serialises_in_arrival_order(io: ModuleType) -> None:
    async def main() -> tuple[list[str], list[str]]:
        event = io.Event()
        woken: list[str] = []

        async def wait_event(name: str) -> None:
            await event.wait()
            woken.append(name)

        lock = io.Lock()
        trace: list[str] = []

        async def critical(name: str) -> None:
            async with lock:
                trace.append(f"{name}+")
                await io.sleep(0.01)
                trace.append(f"{name}-")

        loop = io.get_running_loop()
        waiters = [loop.create_task(wait_event(n)) for n in "ab"]
        await io.sleep(0.01)
        event.set()
        await io.gather(*waiters, *(critical(n) for n in "xyz"))
        return sorted(woken), trace

    assert io.run(main()) == (["a", "b"], ["x+", "x-", "y+", "y-", "z+", "z-"])


def test_run_cancels_what_is_left_and_returns_the_result(io: ModuleType) -> None:
    cleaned: list[str] = []

    async def background() -> None:
        try:
            await io.sleep(5)
        finally:
            cleaned.append("background cleaned up")

    async def main() -> str:
        io.get_running_loop().create_task(background())
        await io.sleep(0.01)
        return "result"

    assert io.run(main()) == "result"
    assert cleaned == ["background cleaned up"]


def test_call_soon_threadsafe_wakes_a_sleeping_loop(io: ModuleType) -> None:
    async def main() -> float:
        loop = io.get_running_loop()
        future = loop.create_future()
        started = time.monotonic()
        threading.Timer(0.05, loop.call_soon_threadsafe, (future.set_result, "from thread")).start()
        async with io.timeout(5):
            assert await future == "from thread"
        return time.monotonic() - started

    assert io.run(main()) < 4


def test_signal_handler_runs_on_the_loop_and_is_removed_after_run(io: ModuleType) -> None:
    before = signal.getsignal(signal.SIGUSR1)

    async def main() -> str:
        loop = io.get_running_loop()
        arrived = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, lambda: arrived.done() or arrived.set_result("SIGUSR1"))
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        async with io.timeout(5):
            return await arrived

    assert io.run(main()) == "SIGUSR1"
    if io is aio:  # asyncio leaves removing its handler to loop.close(): same end state
        assert signal.getsignal(signal.SIGUSR1) == before


# --- streams ----------------------------------------------------------------------------------------------------


async def _echo_server(io: ModuleType) -> Any:
    async def handle(reader: Any, writer: Any) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await io.start_server(handle, "127.0.0.1", 0)


def test_stream_round_trip_readuntil_read_and_large_writes(io: ModuleType) -> None:
    payload = os.urandom(4 * 1024 * 1024)  # far more than a socket buffer: exercises the flush path

    async def main() -> tuple[bytes, bytes, bool, str]:
        server = await _echo_server(io)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await io.open_connection("127.0.0.1", port)
        writer.write(b"line one\r\nrest")
        await writer.drain()
        line = await reader.readuntil(b"\n")
        rest = await reader.read(4)

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        sender = io.get_running_loop().create_task(send())
        echoed = await reader.read(-1)
        await sender
        peer = writer.get_extra_info("peername")
        writer.close()
        await writer.wait_closed()
        server.close()
        return line, rest, echoed == payload, f"{peer[0]}:{peer[1] == port}"

    assert io.run(main()) == (b"line one\r\n", b"rest", True, "127.0.0.1:True")


def test_readuntil_limit_and_end_of_stream_errors(io: ModuleType) -> None:
    async def main() -> tuple[str, bytes]:
        async def handle(reader: Any, writer: Any) -> None:
            writer.write(b"x" * 200 + b"\n" + b"partial")
            await writer.drain()
            writer.close()

        server = await io.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await io.open_connection("127.0.0.1", port, limit=100)
        try:
            await reader.readuntil(b"\n")
            overrun = "no"
        except io.LimitOverrunError:
            overrun = "LimitOverrunError"
        await reader.read(201)  # drop the long line
        try:
            await reader.readuntil(b"\n")
            partial = b""
        except io.IncompleteReadError as error:
            partial = error.partial
        writer.close()
        server.close()
        return overrun, partial

    assert io.run(main()) == ("LimitOverrunError", b"partial")


def test_connect_refused_raises_connection_refused_error(io: ModuleType) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: refused

        async def main() -> None:
            await io.open_connection("127.0.0.1", port)

        with pytest.raises(ConnectionRefusedError):
            io.run(main())


def test_abort_ends_the_peer_read_and_a_timeout_around_a_read_cancels_it(io: ModuleType) -> None:
    async def main() -> tuple[str, bytes]:
        got: list[bytes] = []

        async def handle(reader: Any, writer: Any) -> None:
            got.append(await reader.read(100))
            writer.close()

        server = await io.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await io.open_connection("127.0.0.1", port)
        try:
            async with io.timeout(0.05):
                await reader.read(10)  # the server says nothing first
            state = "read"
        except TimeoutError:
            state = "timeout"
        writer.transport.abort()
        for _ in range(100):
            if got:
                break
            await io.sleep(0.01)
        server.close()
        return state, got[0] if got else b"nothing"

    assert io.run(main()) == ("timeout", b"")


@pytest.fixture(scope="module")
def tls_server() -> Any:
    """A blocking TLS echo server in a thread (the stdlib's ssl, not either loop), with its CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                while data := tls.recv(65536):
                    tls.sendall(data)
        except (OSError, ssl.SSLError):
            pass

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield ca, listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def test_start_tls_verifies_and_carries_data(io: ModuleType, tls_server: Any) -> None:
    ca, port = tls_server
    verified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(verified)
    untrusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA loaded: verification must fail
    payload = os.urandom(300_000)

    async def main() -> tuple[str | None, bool, str]:
        reader, writer = await io.open_connection("127.0.0.1", port)
        await writer.start_tls(verified, server_hostname="localhost")
        version = writer.get_extra_info("ssl_object").version()
        writer.write(payload)
        await writer.drain()
        echoed = await reader.readexactly(len(payload))
        writer.transport.abort()
        reader, writer = await io.open_connection("127.0.0.1", port)
        try:
            await writer.start_tls(untrusting, server_hostname="localhost")
            failure = "none"
        except ssl.SSLCertVerificationError:
            failure = "SSLCertVerificationError"
        finally:
            writer.transport.abort()
        return version, echoed == payload, failure

    version, same, failure = io.run(main())
    assert version in ("TLSv1.2", "TLSv1.3")
    assert (same, failure) == (True, "SSLCertVerificationError")


# --- what it is for ------------------------------------------------------------------------------------------------


def test_importing_aio_imports_neither_asyncio_nor_ssl() -> None:
    code = (
        "import sys; import helper.aio; "
        "print(sorted(m for m in ('asyncio', 'ssl', 'inspect', 'typing', 'dataclasses') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


def test_an_exception_nobody_retrieved_is_reported() -> None:
    code = (
        "from helper import aio\n"
        "async def fail():\n    raise ValueError('lost in the background')\n"
        "async def main():\n    aio.get_running_loop().create_task(fail())\n    await aio.sleep(0.01)\n"
        "aio.run(main())\nimport gc; gc.collect()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    reports = [json.loads(line) for line in done.stdout.splitlines()]  # JSON lines, as all the helper's logs
    assert [r["level"] for r in reports] == ["error"]
    assert "never retrieved" in reports[0]["msg"] and "lost in the background" in reports[0]["error"]
    assert "ValueError" in reports[0]["traceback"]


def test_timeouts_that_end_in_time_do_not_pile_up_in_the_timer_heap() -> None:
    """Each timeout() leaves a cancelled timer due at its deadline; they are purged, as asyncio purges them, so a
    busy agent's memory does not grow with requests x timeout length."""
    from helper.aio.loop import PURGE_AT

    async def main() -> int:
        for _ in range(5000):
            async with aio.timeout(60):
                await aio.sleep(0)
        return len(aio.get_running_loop()._timers)

    assert aio.run(main()) <= 2 * PURGE_AT + 2


def test_the_server_keeps_accepting_after_an_accept_error() -> None:
    """accept() failing (out of descriptors here) is logged and retried: a server that stopped accepting would leave
    the agent unable to become ready or drain."""
    import errno
    import io as text_io

    from helper import jsonlog
    from helper.aio.streams import Server

    class FailsOnce(socket.socket):
        failed = False

        def accept(self) -> tuple[socket.socket, Any]:
            if not FailsOnce.failed:
                FailsOnce.failed = True
                raise OSError(errno.EMFILE, "Too many open files")
            return super().accept()

    log = text_io.StringIO()
    jsonlog.use_stream(log)

    async def main() -> bytes:
        listener = FailsOnce(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)

        async def handle(reader: Any, writer: Any) -> None:
            writer.write(b"accepted")
            await writer.drain()
            writer.close()

        server = Server(aio.get_running_loop(), [listener], handle, 1024)
        reader, writer = await aio.open_connection("127.0.0.1", listener.getsockname()[1])
        async with aio.timeout(10):
            answer = await reader.read(-1)
        writer.close()
        server.close()
        return answer

    try:
        assert aio.run(main()) == b"accepted"
    finally:
        jsonlog.use_stream(None)
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["accept failed; retrying"]
    assert "Too many open files" in lines[0]["error"]
