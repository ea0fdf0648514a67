"""A small HTTP/1.1 server on helper.aio streams, for the agent's handful of endpoints.

Why not ``http.server``: it is thread-per-connection and blocking, and the agent must hold a /prestop response for
the whole drain while still answering /ready and /metrics, in one process with a 20 MB budget. Why not a framework:
the helper image has no third-party dependencies.

What it guarantees, because kubelets, load balancers and port scanners will all talk to it:

- any input, however malformed, gets a 4xx/5xx answer or a closed connection, never an exception that escapes;
- every read is bounded in size (request line, header section, header count, body) and in time (a slow or silent
  client cannot hold a connection forever), and the number of open connections is capped;
- keep-alive and pipelining work (HTTP/1.1 default, HTTP/1.0 with ``Connection: keep-alive``);
- shutdown stops accepting, lets requests in flight finish within a grace period, and closes idle connections.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Awaitable, Callable

from helper import aio
from helper.http.wire import (
    CHUNKED,
    REASONS,
    TOKEN,
    PeerClosed,
    ProtocolError,
    body_length,
    header_map,
    read_chunked,
    read_fixed,
    read_headers,
    read_line,
)
from helper.record import field, record

EVERY_INTERFACE = ("0.0.0.0", "::")
"""Every interface, spelled out as the addresses ``getaddrinfo(None, port, AI_PASSIVE)`` answers, so listening needs
no resolver call (and no thread for it); the IPv6 socket is IPv6-only, as asyncio's would be for ``host=None``."""


@record(frozen=True, slots=True)
class Limits:
    max_line: int = 8192
    """Longest request line (and any single header line), bytes."""
    max_header_bytes: int = 16384
    max_headers: int = 64
    max_body: int = 65536
    head_timeout: float = 10.0
    """Time for a new connection to deliver its request head, and for any head to finish once started."""
    idle_timeout: float = 60.0
    """Time a keep-alive connection may sit between requests."""
    body_timeout: float = 10.0
    write_timeout: float = 10.0
    max_connections: int = 128


@record(slots=True)
class Request:
    method: str
    target: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    body: bytes
    peer: str
    keep_alive: bool


@record(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


Handler = Callable[[Request], Awaitable[Response]]
ProtocolErrorHook = Callable[[int, str, str], None]
HandlerErrorHook = Callable[[Request, BaseException], None]

_VERSION = re.compile(rb"HTTP/(\d)\.(\d)")
_TARGET_BAD = re.compile(rb"[\x00-\x20\x7f-\xff]")
_HEADER_VALUE_BAD = re.compile(r"[\r\n\x00]")
_NO_BODY = frozenset({204, 304})


class _Idle(Exception):
    """A keep-alive connection timed out between requests: close it without an answer."""


@record(eq=False, slots=True)
class _Connection:
    task: aio.Task[None] | None
    busy: bool = False


@record(slots=True)
class _DateCache:
    second: int = -1
    value: str = ""

    def now(self) -> str:
        current = int(time.time())
        if current != self.second:
            self.second = current
            self.value = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(current))
        return self.value


@record
class HttpServer:
    handler: Handler
    limits: Limits = field(default_factory=Limits)
    on_protocol_error: ProtocolErrorHook | None = None
    on_handler_error: HandlerErrorHook | None = None
    server_name: str = "lanes-agent"
    _servers: list[aio.Server] = field(default_factory=list, init=False)
    _connections: set[_Connection] = field(default_factory=set, init=False)
    _closing: bool = field(default=False, init=False)
    _date: _DateCache = field(default_factory=_DateCache, init=False)

    async def start(self, host: str | None, port: int) -> None:
        """Listen on ``host`` (None: every interface, IPv4 and IPv6) and ``port``. Raises OSError if taken."""
        server = await aio.start_server(
            self._accept, host=EVERY_INTERFACE if host is None else host, port=port, limit=self.limits.max_line,
            reuse_address=True,
        )
        self._servers.append(server)

    @property
    def ports(self) -> list[int]:
        return sorted({sock.getsockname()[1] for server in self._servers for sock in server.sockets})

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, give requests in flight ``grace`` seconds to finish, then close every connection."""
        self._closing = True
        for server in self._servers:
            server.close()
        for connection in list(self._connections):
            if not connection.busy and connection.task is not None:
                connection.task.cancel()
        busy = [c.task for c in self._connections if c.busy and c.task is not None]
        if busy:
            await aio.wait(busy, timeout=grace)
        remaining = [c.task for c in self._connections if c.task is not None]
        for task in remaining:
            task.cancel()
        if remaining:
            await aio.wait(remaining, timeout=1.0)

    # --- one connection --------------------------------------------------------------------------------------

    async def _accept(self, reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
        peer = _peer(writer)
        if self._closing or len(self._connections) >= self.limits.max_connections:
            self._report_protocol_error(503, "connection limit reached", peer)
            await self._write_error(writer, 503, "too many connections")
            await _close(writer, reader, linger=True)
            return
        connection = _Connection(aio.current_task())
        self._connections.add(connection)
        linger = True
        try:
            linger = await self._serve(reader, writer, connection, peer)
        except (ConnectionError, TimeoutError, OSError, _Idle):
            linger = False
        except aio.CancelledError:  # shutdown: drop the connection at once
            writer.transport.abort()
            if not self._closing:
                raise
            return
        except Exception as error:  # a bug must cost one connection, not the agent
            self._report_protocol_error(500, f"internal error: {error!r}", peer)
        finally:
            self._connections.discard(connection)
        await _close(writer, reader, linger=linger)

    async def _serve(
        self, reader: aio.StreamReader, writer: aio.StreamWriter, connection: _Connection, peer: str
    ) -> bool:
        """Answer requests until the connection ends; True when unread input may remain (close by lingering)."""
        first = True
        while not self._closing:
            try:
                request = await self._read_request(reader, writer, peer, first)
            except PeerClosed:
                return False
            except ProtocolError as error:
                self._report_protocol_error(error.status, error.message, peer)
                await self._write_error(writer, error.status, error.message)
                return True
            first = False
            connection.busy = True
            response = await self._call(request)
            keep_alive = request.keep_alive and not response.close and not self._closing
            await self._write(writer, request.method, response, keep_alive)
            connection.busy = False
            if not keep_alive:
                return False
        return False

    async def _read_request(
        self, reader: aio.StreamReader, writer: aio.StreamWriter, peer: str, first: bool
    ) -> Request:
        limits = self.limits
        try:
            async with aio.timeout(limits.head_timeout if first else limits.idle_timeout):
                line = b""
                for _ in range(4):  # RFC 9112 2.2: tolerate empty lines before a request line
                    line = await read_line(reader, too_long=414, what="request line")
                    if line:
                        break
        except TimeoutError:
            if first:
                raise ProtocolError(408, "no request received in time") from None
            raise _Idle() from None
        try:
            async with aio.timeout(limits.head_timeout):
                fields = await read_headers(reader, max_bytes=limits.max_header_bytes, max_count=limits.max_headers)
        except TimeoutError:
            raise ProtocolError(408, "request head not received in time") from None
        method, target, version = _request_line(line)
        headers = header_map(fields)
        path, query = _split_target(target)
        connection_tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        # HTTP/1.1 keeps connections open unless told otherwise; HTTP/1.0 only when asked to.
        close = "close" in connection_tokens
        keep_alive = "keep-alive" in connection_tokens if version == "HTTP/1.0" else not close
        body = b""
        length = body_length(headers, max_length=limits.max_body)
        if length:
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                async with aio.timeout(limits.body_timeout):
                    if length == CHUNKED:
                        body, _ = await read_chunked(reader, keep=limits.max_body, max_total=limits.max_body)
                    else:
                        body, _ = await read_fixed(reader, length, keep=length)
            except TimeoutError:
                raise ProtocolError(408, "request body not received in time") from None
        return Request(method, target, path, query, version, headers, body, peer, keep_alive)

    async def _call(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except aio.CancelledError:
            raise
        except Exception as error:
            if self.on_handler_error is not None:
                self.on_handler_error(request, error)
            return Response(500, b"internal error\n", close=True)

    # --- writing ---------------------------------------------------------------------------------------------

    async def _write(self, writer: aio.StreamWriter, method: str, response: Response, keep_alive: bool) -> None:
        status = response.status
        body = b"" if status in _NO_BODY or status < 200 else response.body
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
            f"Server: {self.server_name}",
            f"Date: {self._date.now()}",
        ]
        if status not in _NO_BODY:
            lines.append(f"Content-Type: {response.content_type}")
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        for name, value in response.headers:
            if _HEADER_VALUE_BAD.search(name) or _HEADER_VALUE_BAD.search(value):
                raise ValueError(f"refusing to send header {name!r} with a line break")
            lines.append(f"{name}: {value}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        writer.write(head if method == "HEAD" else head + body)
        async with aio.timeout(self.limits.write_timeout):
            await writer.drain()

    async def _write_error(self, writer: aio.StreamWriter, status: int, message: str) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError, OSError):
            await self._write(writer, "GET", Response(status, (message + "\n").encode("utf-8")), False)

    def _report_protocol_error(self, status: int, message: str, peer: str) -> None:
        if self.on_protocol_error is not None:
            self.on_protocol_error(status, message, peer)


async def _close(writer: aio.StreamWriter, reader: aio.StreamReader, *, linger: bool) -> None:
    """Close without losing the last response.

    Closing a socket that still has unread input makes the kernel send a reset, which can destroy the response
    sitting in the peer's receive buffer (an error answer sent before the request was fully read). So after an
    error: half-close, read and drop what the peer still sends for a moment, then close.
    """
    try:
        if linger and writer.can_write_eof():
            writer.write_eof()
            async with aio.timeout(0.5):
                for _ in range(16):
                    if not await reader.read(65536):
                        break
    except (ConnectionError, TimeoutError, OSError):
        pass
    writer.close()
    try:
        async with aio.timeout(1.0):
            await writer.wait_closed()
    except (ConnectionError, TimeoutError, OSError):
        writer.transport.abort()


def _peer(writer: aio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "")


def _request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise ProtocolError(400, "malformed request line")
    method, target, version = parts
    match = _VERSION.fullmatch(version)
    if not match:
        raise ProtocolError(400, "malformed HTTP version")
    if match.group(1) != b"1":
        raise ProtocolError(505, "only HTTP/1.x is supported")
    if not TOKEN.fullmatch(method):
        raise ProtocolError(400, "malformed method")
    if not target or _TARGET_BAD.search(target):
        raise ProtocolError(400, "malformed request target")
    return method.decode("ascii"), target.decode("ascii"), "HTTP/1.0" if match.group(2) == b"0" else "HTTP/1.1"


def _split_target(target: str) -> tuple[str, str]:
    """Origin-form (``/p?q``), absolute-form (``http://h/p?q``) or ``*`` -> (path, query)."""
    if target.startswith(("http://", "https://")):
        rest = target.split("://", 1)[1]
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        target = rest[cut:] or "/"
        if not target.startswith("/"):
            target = "/" + target
    elif target != "*" and not target.startswith("/"):
        raise ProtocolError(400, "malformed request target")
    path, _, query = target.partition("?")
    return path, query
