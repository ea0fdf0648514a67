"""HTTP/1.1 wire format pieces shared by the agent's server and the helper's client (RFC 9112).

Only what both directions need: bounded line and header reading, message body framing (Content-Length and
chunked), and the reason phrases. Every read is bounded in bytes; the callers bound it in time. Malformed input
raises :class:`ProtocolError` carrying the status a server should answer with, never anything else.
"""

from __future__ import annotations

import re

from helper import aio

REASONS = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}")


class ProtocolError(Exception):
    """Malformed or oversized HTTP. ``status`` is what a server answers; the connection is not reusable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PeerClosed(Exception):
    """The peer closed the connection before sending anything of a new message (a normal keep-alive end)."""


async def read_line(reader: aio.StreamReader, *, too_long: int, what: str) -> bytes:
    """One line without its CRLF (a bare LF is accepted, as RFC 9112 allows). Bounded by the stream's limit."""
    try:
        line = await reader.readuntil(b"\n")
    except aio.LimitOverrunError:
        raise ProtocolError(too_long, f"{what} too long") from None
    except aio.IncompleteReadError as error:
        if not error.partial:
            raise PeerClosed() from None
        raise ProtocolError(400, f"connection closed in the middle of the {what}") from None
    return line[:-2] if line.endswith(b"\r\n") else line[:-1]


async def read_headers(reader: aio.StreamReader, *, max_bytes: int, max_count: int) -> list[tuple[str, str]]:
    """Header fields up to the empty line, as (lowercased name, value) pairs in order."""
    fields: list[tuple[str, str]] = []
    total = 0
    while True:
        try:
            line = await read_line(reader, too_long=431, what="header line")
        except PeerClosed:
            raise ProtocolError(400, "connection closed in the header section") from None
        if not line:
            return fields
        total += len(line) + 2
        if total > max_bytes or len(fields) >= max_count:
            raise ProtocolError(431, "header section too large")
        if line[:1] in (b" ", b"\t"):
            raise ProtocolError(400, "obsolete header line folding")
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name):
            raise ProtocolError(400, "malformed header line")
        value = value.strip(b" \t")
        if _FIELD_VALUE_BAD.search(value):
            raise ProtocolError(400, "control character in a header value")
        fields.append((name.decode("ascii").lower(), value.decode("latin-1")))


def header_map(fields: list[tuple[str, str]]) -> dict[str, str]:
    """Combine repeated fields with ``, `` (RFC 9110 5.3); conflicting Content-Length values are an error."""
    combined: dict[str, str] = {}
    for name, value in fields:
        if name in combined:
            if name == "content-length":
                if combined[name] != value:
                    raise ProtocolError(400, "conflicting Content-Length headers")
                continue
            combined[name] = f"{combined[name]}, {value}"
        else:
            combined[name] = value
    return combined


CHUNKED = -1


def body_length(headers: dict[str, str], *, max_length: int) -> int:
    """Body framing of a message: a byte count, or CHUNKED. Smuggling-prone combinations are rejected."""
    encoding = headers.get("transfer-encoding")
    length = headers.get("content-length")
    if encoding is not None:
        if length is not None:
            raise ProtocolError(400, "both Transfer-Encoding and Content-Length")
        if encoding.strip().lower() != "chunked":
            raise ProtocolError(501, f"unsupported Transfer-Encoding {encoding[:40]!r}")
        return CHUNKED
    if length is None:
        return 0
    length = length.strip()
    if not length.isdigit() or not length.isascii() or len(length) > 18:
        raise ProtocolError(400, "invalid Content-Length")
    size = int(length)
    if size > max_length:
        raise ProtocolError(413, f"body of {size} bytes is over the {max_length} byte limit")
    return size


async def read_fixed(reader: aio.StreamReader, size: int, *, keep: int) -> tuple[bytes, int]:
    """Read ``size`` body bytes; keep the first ``keep`` of them (the rest is read and dropped)."""
    kept = bytearray()
    remaining = size
    while remaining:
        chunk = await reader.read(min(remaining, 65536))
        if not chunk:
            raise ProtocolError(400, "connection closed in the middle of the body")
        remaining -= len(chunk)
        if len(kept) < keep:
            kept += chunk[: keep - len(kept)]
    return bytes(kept), size


async def read_chunked(reader: aio.StreamReader, *, keep: int, max_total: int) -> tuple[bytes, int]:
    """Decode a chunked body (extensions and trailers are read and ignored); returns (kept bytes, total size)."""
    kept = bytearray()
    total = 0
    while True:
        try:
            line = await read_line(reader, too_long=400, what="chunk size line")
        except PeerClosed:
            raise ProtocolError(400, "connection closed in a chunked body") from None
        size_text = line.split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise ProtocolError(400, "invalid chunk size")
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        if total > max_total:
            raise ProtocolError(413, f"chunked body over the {max_total} byte limit")
        chunk, _ = await read_fixed(reader, size, keep=max(keep - len(kept), 0))
        kept += chunk
        try:
            end = await read_line(reader, too_long=400, what="chunk end")
        except PeerClosed:
            raise ProtocolError(400, "connection closed in a chunked body") from None
        if end:
            raise ProtocolError(400, "chunk data longer than its size")
    for _ in range(64):  # trailer section, bounded like the header section
        try:
            trailer = await read_line(reader, too_long=431, what="trailer line")
        except PeerClosed:
            raise ProtocolError(400, "connection closed in the trailers") from None
        if not trailer:
            return bytes(kept), total
    raise ProtocolError(431, "too many trailer lines")
