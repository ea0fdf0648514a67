"""A small HTTP/1.1 client on helper.aio streams: what the agent and the prewarm need, nothing more.

Used for the app's readiness path, the self warm-up (keep-alive connections, so warm-up exercises the app rather
than TCP setup) and the going-offline broadcast; the prewarm uses the request/response functions on connections it
opens itself, to time each phase. ``urllib`` would cost a thread per request and drag in ``email`` and
``http.client``; this is about 150 lines over the shared wire helpers.
"""

from __future__ import annotations

import re

from helper import aio
from helper.http.dial import dial_host
from helper.http.wire import (
    CHUNKED,
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

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

USER_AGENT = "lanes-helper"
MAX_HEADER_BYTES = 65536
MAX_HEADERS = 128
MAX_BODY = 64 * 1024 * 1024
"""Bodies are read to the end (so the connection can be reused) but only ``keep`` bytes are stored."""

STATUS_LINE = re.compile(rb"HTTP/1\.(\d) (\d{3})(?: (.*))?")
_HEADER_BAD = re.compile(r"[\r\n\x00]")


class HttpError(OSError):
    """The response was malformed or the connection broke mid-response."""


class NoResponse(HttpError):
    """The connection closed before any byte of a response: on a reused connection, the request was not seen."""


@record(slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    size: int
    keep_alive: bool


def encode_request(
    method: str, path: str, host: str, headers: tuple[tuple[str, str], ...] = (), body: bytes = b""
) -> bytes:
    """Serialise a request; header values with line breaks are refused (header injection).

    ``User-Agent`` and ``Accept: */*`` are sent unless ``headers`` has its own; an ``Accept`` given empty is left
    out altogether (what the kubelet's probes do with httpHeaders).
    """
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    given = {name.lower() for name, _ in headers}
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in given:
        lines.append("Accept: */*")
    for name, value in headers:
        if _HEADER_BAD.search(name) or _HEADER_BAD.search(value):
            raise ValueError(f"header {name!r} contains a line break")
        if name.lower() == "accept" and not value:
            continue
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(
    reader: aio.StreamReader, *, method: str, keep: int = 65536, head_only: bool = False
) -> Response:
    """Read one response (skipping 1xx interim ones); raises HttpError on anything malformed.

    ``head_only`` stops after the header section (the connection is then not reusable): a probe needs the status,
    not a possibly large body.
    """
    try:
        while True:
            line = await read_line(reader, too_long=502, what="status line")
            match = STATUS_LINE.fullmatch(line)
            if not match:
                raise HttpError(f"not an HTTP/1.x response: {line[:40]!r}")
            status = int(match.group(2))
            reason = (match.group(3) or b"").decode("latin-1")
            headers = header_map(await read_headers(reader, max_bytes=MAX_HEADER_BYTES, max_count=MAX_HEADERS))
            if 100 <= status < 200 and status != 101:
                continue
            break
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep_alive = "close" not in tokens if match.group(1) == b"1" else "keep-alive" in tokens
        if head_only:
            return Response(status, reason, headers, b"", 0, False)
        if method == "HEAD" or status in (204, 304) or status < 200:
            return Response(status, reason, headers, b"", 0, keep_alive)
        length = body_length(headers, max_length=MAX_BODY)
        if length == CHUNKED:
            body, size = await read_chunked(reader, keep=keep, max_total=MAX_BODY)
        elif "content-length" in headers:
            body, size = await read_fixed(reader, length, keep=keep)
        else:  # delimited by the connection closing
            body, size = await _read_to_eof(reader, keep=keep)
            keep_alive = False
        return Response(status, reason, headers, body, size, keep_alive)
    except PeerClosed:
        raise NoResponse("connection closed before a response arrived") from None
    except ProtocolError as error:
        raise HttpError(f"malformed response: {error.message}") from None


async def _read_to_eof(reader: aio.StreamReader, *, keep: int) -> tuple[bytes, int]:
    kept = bytearray()
    size = 0
    while chunk := await reader.read(65536):
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError(f"response body over {MAX_BODY} bytes")
        if len(kept) < keep:
            kept += chunk[: keep - len(kept)]
    return bytes(kept), size


@record
class Connection:
    """A keep-alive connection to one origin, opened on first use and reopened when the server closed it."""

    host: str
    port: int
    host_header: str
    tls: ssl.SSLContext | None = None
    server_hostname: str | None = None
    _reader: aio.StreamReader | None = field(default=None, init=False, repr=False)
    _writer: aio.StreamWriter | None = field(default=None, init=False, repr=False)

    async def request(
        self,
        method: str,
        path: str,
        *,
        timeout: float,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        keep: int = 65536,
    ) -> Response:
        """Send one request and read its response, all within ``timeout`` seconds.

        A request on a reused connection that fails before any response byte is retried once on a fresh
        connection: the server may have closed the idle connection just as we reused it.
        """
        payload = encode_request(method, path, self.host_header, headers, body)
        async with aio.timeout(timeout):
            reused = self._writer is not None
            try:
                return await self._exchange(payload, method, keep, timeout)
            except (NoResponse, ConnectionResetError, BrokenPipeError):
                self.close()
                if not reused:
                    raise
            return await self._exchange(payload, method, keep, timeout)

    async def _exchange(self, payload: bytes, method: str, keep: int, timeout: float) -> Response:
        if self._writer is None:
            reader, writer, _ = await dial_host(self.host, self.port, timeout)
            if self.tls is not None:
                try:
                    await writer.start_tls(self.tls, server_hostname=self.server_hostname or self.host)
                except BaseException:
                    writer.transport.abort()
                    raise
            self._reader, self._writer = reader, writer
        assert self._reader is not None and self._writer is not None
        try:
            self._writer.write(payload)
            await self._writer.drain()
            response = await read_response(self._reader, method=method, keep=keep)
        except BaseException:  # includes cancellation: a half-done exchange must never be reused
            self.close()
            raise
        if not response.keep_alive:
            self.close()
        return response

    def close(self) -> None:
        """Drop the connection (abort: nothing is left to flush, and a slow peer must not delay us)."""
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None


async def fetch(
    host: str,
    port: int,
    method: str,
    path: str,
    *,
    timeout: float,
    host_header: str | None = None,
    tls: ssl.SSLContext | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
) -> Response:
    """One request on its own connection."""
    connection = Connection(host, port, host_header or f"{host}:{port}", tls=tls)
    try:
        return await connection.request(method, path, timeout=timeout, headers=headers, body=body)
    finally:
        connection.close()
