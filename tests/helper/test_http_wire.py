"""The helper's HTTP server and client in-process, on real loopback sockets, with limits small enough to hit.

The agent-level tests (test_agent_http.py) use the production limits; here the timeouts and the connection cap are
shrunk so slow clients, idle keep-alive connections and overload can be shown in well under a second each.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import pytest

from helper import aio
from helper.http.client import Connection, HttpError, fetch
from helper.http.server import HttpServer, Limits, Request, Response


async def hello(request: Request) -> Response:
    return Response(200, b"hello " + request.body + b"\n")


async def with_server(
    test: Callable[[HttpServer, int], Awaitable[None]],
    handler: Callable[[Request], Awaitable[Response]] = hello,
    **limits: float,
) -> None:
    errors: list[tuple[int, str]] = []
    server = HttpServer(handler, Limits(**limits), on_protocol_error=lambda s, m, p: errors.append((s, m)))  # type: ignore[arg-type]
    await server.start("127.0.0.1", 0)
    try:
        await test(server, server.ports[0])
    finally:
        await server.shutdown(0.5)


async def raw(port: int, data: bytes, *, read_timeout: float = 3.0, half_close: bool = False) -> bytes:
    reader, writer = await aio.open_connection("127.0.0.1", port)
    writer.write(data)
    if half_close:
        writer.write_eof()
    try:
        async with aio.timeout(read_timeout):
            return await reader.read()
    finally:
        writer.close()


def test_silent_client_gets_408_after_the_head_timeout() -> None:
    async def check(server: HttpServer, port: int) -> None:
        loop = aio.get_running_loop()
        started = loop.time()
        response = await raw(port, b"GET /slow HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
        assert response.startswith(b"HTTP/1.1 408 ")
        assert 0.25 <= loop.time() - started < 2.0

    aio.run(with_server(check, head_timeout=0.3))


def test_idle_keep_alive_connection_is_closed_silently() -> None:
    async def check(server: HttpServer, port: int) -> None:
        response = await raw(port, b"GET / HTTP/1.1\r\n\r\n")
        assert response.count(b"HTTP/1.1 200 OK") == 1 and response.endswith(b"hello \n")
        assert server.open_connections == 0

    aio.run(with_server(check, idle_timeout=0.3))


def test_slow_body_gets_408() -> None:
    async def check(server: HttpServer, port: int) -> None:
        response = await raw(port, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
        assert response.startswith(b"HTTP/1.1 408 ")

    aio.run(with_server(check, body_timeout=0.3))


def test_connection_cap_refuses_with_503_and_recovers() -> None:
    async def check(server: HttpServer, port: int) -> None:
        held = [await aio.open_connection("127.0.0.1", port) for _ in range(2)]
        await aio.sleep(0.05)
        assert (await raw(port, b"GET / HTTP/1.1\r\n\r\n", half_close=True)).startswith(b"HTTP/1.1 503 ")
        for _, writer in held:
            writer.close()
        await aio.sleep(0.1)
        assert (await raw(port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")).startswith(b"HTTP/1.1 200 ")

    aio.run(with_server(check, max_connections=2))


def test_handler_exception_is_a_500_and_the_server_goes_on() -> None:
    calls: list[str] = []

    async def flaky(request: Request) -> Response:
        calls.append(request.path)
        if request.path == "/boom":
            raise RuntimeError("bug")
        return Response(200, b"fine\n")

    async def check(server: HttpServer, port: int) -> None:
        assert (await raw(port, b"GET /boom HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 500 ")
        assert (await raw(port, b"GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n")).endswith(b"fine\n")

    aio.run(with_server(check, flaky))
    assert calls == ["/boom", "/ok"]


def test_shutdown_lets_requests_in_flight_finish() -> None:
    async def main() -> None:
        gate = aio.Event()

        async def slow(request: Request) -> Response:
            await gate.wait()
            return Response(200, b"done\n")

        server = HttpServer(slow, Limits())
        await server.start("127.0.0.1", 0)
        port = server.ports[0]
        in_flight = aio.create_task(raw(port, b"GET / HTTP/1.1\r\n\r\n"))
        idle_reader, idle_writer = await aio.open_connection("127.0.0.1", port)
        await aio.sleep(0.1)
        stopping = aio.create_task(server.shutdown(grace=2.0))
        await aio.sleep(0.1)
        assert await idle_reader.read() == b""  # an idle connection is closed at once
        gate.set()
        response = await in_flight
        await stopping
        assert response.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in response
        idle_writer.close()
        with pytest.raises(OSError):
            await aio.open_connection("127.0.0.1", port)

    aio.run(main())


# --- client --------------------------------------------------------------------------------------------------


async def scripted_server(answers: list[bytes]) -> tuple[aio.Server, int, list[bytes]]:
    """A raw server that answers each connection's first request with the next scripted bytes, then closes."""
    seen: list[bytes] = []

    async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(answers.pop(0))
        await writer.drain()
        writer.close()

    server = await aio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


@pytest.mark.parametrize(
    ("answer", "body", "size"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello", 5),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", b"hello", 5),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil close", b"until close", 11),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", b"", 0),
    ],
)
def test_client_reads_every_body_framing(answer: bytes, body: bytes, size: int) -> None:
    async def main() -> None:
        server, port, seen = await scripted_server([answer])
        async with server:
            response = await fetch("127.0.0.1", port, "GET", "/x", timeout=3)
        assert response.body == body and response.size == size
        assert seen[0].startswith(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:")

    aio.run(main())


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", b""],
)
def test_client_reports_malformed_responses(answer: bytes) -> None:
    async def main() -> None:
        server, port, _ = await scripted_server([answer])
        async with server:
            with pytest.raises(HttpError):
                await fetch("127.0.0.1", port, "GET", "/", timeout=3)

    aio.run(main())


def test_client_reuses_connections_and_recovers_from_a_stale_one() -> None:
    async def main() -> None:
        connections = 0

        async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            for _ in range(2):  # two requests per connection, then close without telling
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except aio.IncompleteReadError:
                    break
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
            writer.close()

        server = await aio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            connection = Connection("127.0.0.1", port, f"127.0.0.1:{port}")
            for _ in range(5):
                response = await connection.request("GET", "/", timeout=3)
                assert response.body == b"ok"
                await aio.sleep(0.02)
            connection.close()
        assert connections == 3  # 2 + 2 + 1: reused, and the stale reuse was retried transparently

    aio.run(main())


def test_client_refuses_header_injection() -> None:
    async def main() -> None:
        with pytest.raises(ValueError):
            await fetch("127.0.0.1", 9, "GET", "/", timeout=1, headers=(("X", "a\r\nEvil: 1"),))

    aio.run(main())


def test_port_in_use_is_an_os_error() -> None:
    async def main() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            server = HttpServer(hello)
            with pytest.raises(OSError):
                await server.start("127.0.0.1", taken.getsockname()[1])

    aio.run(main())
