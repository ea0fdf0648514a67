"""TCP streams, plain or TLS: StreamReader/StreamWriter pairs from open_connection and start_server.

The API is asyncio's stream API as far as the helper uses it (read, readuntil with a limit, write/drain,
write_eof, close/wait_closed, start_tls, get_extra_info, ``transport.abort()``), over a non-blocking socket:

- reading is *pulled*: bytes are received only while a reader waits for them, so a peer can never fill our memory
  faster than the code consumes it (asyncio pauses reading past a high-water mark for the same reason);
- writes go straight to the socket; what the kernel does not take is kept and sent by a flush task when the socket
  is writable; ``drain()`` waits for that;
- TLS is an ``ssl.SSLSocket`` in non-blocking mode (handshake, reads and writes retried on WANT_READ/WANT_WRITE).
  ``ssl`` is imported only by :meth:`Transport.start_tls`, so a process that never speaks TLS never maps OpenSSL
  (see helper/footprint.py). Closing a TLS stream closes the socket without a close_notify, as Go's HTTP client
  does on abort; HTTP/1.1 framing, not the TLS close, delimits every message the helper reads or sends.
"""

from __future__ import annotations

import errno
import socket

from helper.aio.loop import Future, Loop, Task, get_running_loop
from helper.aio.tasks import sleep

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable
    from typing import Any

DEFAULT_LIMIT = 64 * 1024
RECEIVE_SIZE = 16 * 1024
"""Bytes asked of the socket at once: one maximum TLS record, and more than any message the agent exchanges
needs in one piece (a larger request allocates and shrinks a larger buffer each time, fragmenting the heap)."""
ACCEPT_RETRY_DELAY = 1.0
"""Seconds the server stops accepting after accept() failed for lack of resources (EMFILE...), as asyncio."""

_BLOCKING = (BlockingIOError, InterruptedError)


class IncompleteReadError(EOFError):
    """The stream ended before the separator (or the expected bytes) arrived; ``partial`` is what did."""

    def __init__(self, partial: bytes, expected: int | None) -> None:
        super().__init__(f"{len(partial)} bytes read on a total of {expected!r} expected bytes")
        self.partial = partial
        self.expected = expected


class LimitOverrunError(Exception):
    """No separator within the stream's limit; ``consumed`` bytes are still in the buffer."""

    def __init__(self, message: str, consumed: int) -> None:
        super().__init__(message)
        self.consumed = consumed


class Transport:
    """One connected non-blocking socket, shared by a reader and a writer."""

    def __init__(self, loop: Loop, sock: socket.socket) -> None:
        self._loop = loop
        self._sock: socket.socket = sock
        self._fd = sock.fileno()
        self._tls = False
        self._read_wants_write: tuple[type[BaseException], ...] = ()  # TLS: a read may need the socket writable
        self._write_wants_read: tuple[type[BaseException], ...] = ()  # and a write readable
        self._read_blocks: tuple[type[BaseException], ...] = _BLOCKING
        self._write_blocks: tuple[type[BaseException], ...] = _BLOCKING
        self._out = bytearray()
        self._flusher: Task | None = None
        self._drain_waiters: list[Future] = []
        self._eof_pending = False
        self._eof_written = False
        self._closing = False
        self._closed = False
        self._error: BaseException | None = None
        self._closed_future = loop.create_future()
        self._extra: dict[str, Any] = {"socket": sock}
        for name, query in (("peername", sock.getpeername), ("sockname", sock.getsockname)):
            try:
                self._extra[name] = query()
            except OSError:
                self._extra[name] = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing or self._closed

    # --- reading ---------------------------------------------------------------------------------------------

    async def receive(self, size: int) -> bytes:
        """Up to ``size`` bytes as soon as any are there; b'' at the end of the stream (or once closed here)."""
        while True:
            if self._closed:
                return b""
            try:
                return self._sock.recv(size)
            except self._read_blocks:
                waiting = self._loop.wait_readable(self._fd)
            except self._read_wants_write:
                waiting = self._loop.wait_writable(self._fd)
            try:
                await waiting
            except ConnectionAbortedError:
                if self._closed:  # aborted by another task while we waited: the end of the stream for us
                    return b""
                raise

    # --- writing ---------------------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof_pending or self._eof_written:
            raise RuntimeError("cannot call write() after write_eof()")
        if self._closed or self._closing or not data:
            return  # asyncio too drops writes to a lost connection; drain() reports the loss
        if not self._out:
            try:
                sent = self._sock.send(data)
            except (*self._write_blocks, *self._write_wants_read):
                sent = 0
            except OSError as error:
                self._fail(error)
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        self._out += data
        if self._flusher is None:
            self._flusher = self._loop.create_task(self._flush(), name="flush")

    async def _flush(self) -> None:
        try:
            while self._out:
                try:
                    sent = self._sock.send(self._out)
                except self._write_blocks:
                    await self._loop.wait_writable(self._fd)
                    continue
                except self._write_wants_read:
                    await self._loop.wait_readable(self._fd)
                    continue
                del self._out[:sent]
        except OSError as error:
            self._fail(error)
        finally:
            self._flusher = None
        if self._closed:
            return
        self._release_drainers()
        if self._eof_pending:
            self._shutdown_write()
        if self._closing:
            self._close_now()

    async def drain(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ConnectionResetError("Connection lost")
        if not self._out:
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _release_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if self._error is not None or self._closed:
                waiter.set_exception(self._error or ConnectionResetError("Connection lost"))
                waiter._unretrieved = False  # the drain() awaiting it raises it
            else:
                waiter.set_result(None)

    def can_write_eof(self) -> bool:
        return not self._tls

    def write_eof(self) -> None:
        if self._tls:
            raise RuntimeError("TLS streams cannot write EOF")
        if self._closed or self._eof_pending or self._eof_written:
            return
        if self._out:
            self._eof_pending = True
        else:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        self._eof_pending = False
        self._eof_written = True
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as error:
            self._fail(error)

    # --- closing ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close once what was written has been sent."""
        if self._closed or self._closing:
            return
        self._closing = True
        if not self._out:
            self._close_now()

    def abort(self) -> None:
        """Close at once, dropping what was not sent yet."""
        self._close_now()

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._close_now()

    def _close_now(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._out.clear()
        self._loop.forget_fd(self._fd)
        self._sock.close()
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        self._release_drainers()
        if not self._closed_future.done():
            self._closed_future.set_result(None)

    async def wait_closed(self) -> None:
        if self._closed_future.done():
            return
        waiter = self._loop.create_future()  # our own: a timeout around us cancels it, not the shared one

        def closed(_: Future) -> None:
            if not waiter.done():
                waiter.set_result(None)

        self._closed_future.add_done_callback(closed)
        await waiter

    # --- TLS -------------------------------------------------------------------------------------------------

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """Upgrade to TLS as a client and complete the handshake (the caller aborts the stream if this fails)."""
        import ssl

        await self.drain()
        tls = context.wrap_socket(self._sock, server_hostname=server_hostname, do_handshake_on_connect=False)
        # wrap_socket detached the plain socket object; this one owns the descriptor from now on.
        self._sock = tls
        self._tls = True
        self._extra["socket"] = tls
        self._read_blocks = (*_BLOCKING, ssl.SSLWantReadError)
        self._read_wants_write = (ssl.SSLWantWriteError,)
        self._write_blocks = (*_BLOCKING, ssl.SSLWantWriteError)
        self._write_wants_read = (ssl.SSLWantReadError,)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._loop.wait_readable(self._fd)
            except ssl.SSLWantWriteError:
                await self._loop.wait_writable(self._fd)
        self._extra["ssl_object"] = tls


class StreamReader:
    """Buffered reading with asyncio's ``read`` and ``readuntil`` (``limit``: the longest chunk readuntil keeps)."""

    def __init__(self, transport: Transport, limit: int = DEFAULT_LIMIT) -> None:
        self._transport = transport
        self._limit = limit
        self._buffer = bytearray()
        self._eof = False

    async def _fill(self) -> None:
        data = await self._transport.receive(RECEIVE_SIZE)
        if data:
            self._buffer += data
        else:
            self._eof = True

    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all until the end for -1); b'' at the end of the stream."""
        if n == 0:
            return b""
        if n < 0:
            while not self._eof:
                await self._fill()
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        if not self._buffer and not self._eof:
            await self._fill()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def readexactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            if self._eof:
                partial = bytes(self._buffer)
                self._buffer.clear()
                raise IncompleteReadError(partial, n)
            await self._fill()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Everything up to and including ``separator``; LimitOverrunError past the limit, IncompleteReadError at
        the end of the stream (with what was read)."""
        width = len(separator)
        offset = 0
        while True:
            index = self._buffer.find(separator, offset)
            if index >= 0:
                if index > self._limit:
                    raise LimitOverrunError("Separator is found, but chunk is longer than limit", index)
                end = index + width
                data = bytes(self._buffer[:end])
                del self._buffer[:end]
                return data
            offset = max(0, len(self._buffer) + 1 - width)
            if offset > self._limit:
                raise LimitOverrunError("Separator is not found, and chunk exceed the limit", offset)
            if self._eof:
                partial = bytes(self._buffer)
                self._buffer.clear()
                raise IncompleteReadError(partial, None)
            await self._fill()


class StreamWriter:
    """Writing half of a stream (asyncio's StreamWriter API); ``transport`` gives ``abort()``."""

    def __init__(self, transport: Transport, reader: StreamReader) -> None:
        self.transport = transport
        self._reader = reader

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.transport.write(data)

    async def drain(self) -> None:
        await self.transport.drain()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def write_eof(self) -> None:
        self.transport.write_eof()

    def close(self) -> None:
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    async def wait_closed(self) -> None:
        await self.transport.wait_closed()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    async def start_tls(self, context: ssl.SSLContext, *, server_hostname: str | None = None) -> None:
        if self._reader._buffer:
            raise RuntimeError("start_tls() with unread plain-text bytes")
        await self.transport.start_tls(context, server_hostname)


def _stream(loop: Loop, sock: socket.socket, limit: int) -> tuple[StreamReader, StreamWriter]:
    sock.setblocking(False)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio: requests are small and complete
    transport = Transport(loop, sock)
    reader = StreamReader(transport, limit)
    return reader, StreamWriter(transport, reader)


async def open_connection(host: str, port: int, *, limit: int = DEFAULT_LIMIT) -> tuple[StreamReader, StreamWriter]:
    """Connect to a numeric address (names are resolved by helper.http.dns first, with its own deadline)."""
    loop = get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        return _stream(loop, sock, limit)
    except BaseException:
        loop.forget_fd(sock.fileno())
        sock.close()
        raise


class Server:
    """Listening sockets, each with an accept task handing connections to ``handler(reader, writer)`` tasks."""

    def __init__(
        self,
        loop: Loop,
        sockets: list[socket.socket],
        handler: Callable[[StreamReader, StreamWriter], Awaitable[None]],
        limit: int,
    ) -> None:
        self._loop = loop
        self.sockets = sockets
        self._handler = handler
        self._limit = limit
        self._accepting = [loop.create_task(self._accept(sock), name="accept") for sock in sockets]

    async def _accept(self, listener: socket.socket) -> None:
        while True:
            await self._loop.wait_readable(listener.fileno())
            while True:
                try:
                    conn, _ = listener.accept()
                except _BLOCKING:
                    break
                except ConnectionAbortedError:  # the peer gave up while queued: next one
                    continue
                except OSError as error:
                    # Out of descriptors or memory (or anything else): an agent that stopped accepting would never
                    # be ready nor drain, so report it, pause, and accept again (asyncio pauses for EMFILE too).
                    from helper import jsonlog

                    jsonlog.error("accept failed; retrying", error=repr(error), retry_s=ACCEPT_RETRY_DELAY)
                    await sleep(ACCEPT_RETRY_DELAY)
                    break
                try:
                    reader, writer = _stream(self._loop, conn, self._limit)
                except OSError:  # the peer was gone before we looked at it
                    conn.close()
                    continue
                coro = self._handler(reader, writer)
                self._loop.create_task(coro, name="connection")  # type: ignore[arg-type]

    def close(self) -> None:
        for task in self._accepting:
            task.cancel()
        for sock in self.sockets:
            self._loop.forget_fd(sock.fileno())
            sock.close()

    async def wait_closed(self) -> None:
        return None

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()
        await self.wait_closed()


async def start_server(
    handler: Callable[[StreamReader, StreamWriter], Awaitable[None]],
    host: str | tuple[str, ...],
    port: int,
    *,
    limit: int = DEFAULT_LIMIT,
    backlog: int = 100,
    reuse_address: bool = True,
) -> Server:
    """Listen on each numeric address in ``host`` (an IPv6 socket is IPv6-only, as asyncio binds ``::`` next to
    ``0.0.0.0``); an address family the kernel lacks is skipped, a bind error raises OSError."""
    loop = get_running_loop()
    hosts = (host,) if isinstance(host, str) else host
    sockets: list[socket.socket] = []
    try:
        for address in hosts:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as error:
                if error.errno == errno.EAFNOSUPPORT and len(hosts) > 1:
                    continue  # e.g. no IPv6 in this pod: serve on the rest
                raise
            sockets.append(sock)
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address, port))
            sock.listen(backlog)
            sock.setblocking(False)
            if port == 0 and len(hosts) > 1:
                port = sock.getsockname()[1]  # the others listen on the same port, as one server
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return Server(loop, sockets, handler, limit)
