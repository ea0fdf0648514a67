"""In-test network peers for the helper tests: real listeners on loopback, run in threads.

- :class:`Receiver`: an HTTP server recording every request (the going-offline broadcast receiver), optionally
  slow or failing, optionally running a callback while it handles a request;
- :class:`SilentListener`: accepts TCP connections and never sends a byte (a hung dependency);
- :class:`HttpsServer`: an HTTPS server with a certificate from a throwaway CA made by ``trustme``.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    extra: Any = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 recording requests; ``delay`` and ``status`` shape its answers."""

    delay: float = 0.0
    status: int = 200
    on_request: Callable[[], Any] | None = None
    tls: ssl.SSLContext | None = None
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                extra = receiver.on_request() if receiver.on_request else None
                receiver.received.append(
                    Received(time.monotonic(), self.command, self.path, dict(self.headers.items()), body, extra)
                )
                if receiver.delay:
                    time.sleep(receiver.delay)
                payload = b"thanks\n"
                try:
                    self.send_response(receiver.status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            do_GET = do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"https://localhost:{self.port}/offline"
        return f"http://127.0.0.1:{self.port}/offline"

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class SilentListener:
    """Accepts connections (the kernel completes the handshake) and never reads or writes."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self.sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self._held.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for connection in self._held:
            connection.close()
        self.sock.close()

    def __enter__(self) -> SilentListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        status = 204 if self.path == "/empty" else 503 if self.path == "/down" else 200
        if self.path == "/flaky":  # 503 for the first two requests, then 200: a dependency still starting
            hits = getattr(self.server, "flaky_hits", 0) + 1
            self.server.flaky_hits = hits  # type: ignore[attr-defined]
            status = 503 if hits <= 2 else 200
        body = b"" if status == 204 else b"hello\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class HttpServer:
    """A plain HTTP server (/ -> 200, /empty -> 204, /down -> 503, /flaky -> 503 twice then 200), optionally TLS."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
        self.server.daemon_threads = True
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> HttpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def closed_port() -> int:
    """A port nothing listens on (bound and released: connecting is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
