"""The app whose first request bench/first_request.py measures: every ``/api/...`` request calls one HTTPS dependency.

Like most real services it opens its outbound connection lazily: the TLS context (the CA bundle loaded), the DNS
lookup, the TCP connection and the TLS handshake all happen inside the first request that needs the dependency,
then the connection is kept alive and reused. So the first request pays all of that, later ones do not, and
nothing done in another process before this one started (the pre-warm) can open this pool for it.

``python bench/first_request_app.py --port P --dependency https://NAME:PORT/path --ca-file CA``. Every answer is
JSON: ``{"dependency_status": ..., "opened": {phase: ms} or null}``, ``opened`` naming the set-up phases this
request paid (``tls_context``, ``dns``, ``connect``, ``tls_handshake``). ``/healthz`` answers 200 once listening.
Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


class Pool:
    """One keep-alive HTTPS connection to the dependency, opened on first use, each set-up phase timed."""

    def __init__(self, url: str, ca_file: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "", parts.port or 443, parts.path or "/"
        self.ca_file = ca_file
        self.lock = threading.Lock()
        self.context: ssl.SSLContext | None = None
        self.connection: http.client.HTTPSConnection | None = None

    def _open(self, opened: dict[str, float]) -> http.client.HTTPSConnection:
        if self.context is None:
            started = time.perf_counter()
            self.context = ssl.create_default_context(cafile=self.ca_file)
            opened["tls_context"] = _ms(started)
        started = time.perf_counter()
        address = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][4][:2]
        opened["dns"] = _ms(started)
        started = time.perf_counter()
        raw = socket.create_connection(address, timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        opened["connect"] = _ms(started)
        started = time.perf_counter()
        tls = self.context.wrap_socket(raw, server_hostname=self.host)
        opened["tls_handshake"] = _ms(started)
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=10)
        connection.sock = tls
        return connection

    def call(self) -> tuple[int, dict[str, float] | None]:
        with self.lock:  # one connection is enough for a benchmark that sends one request at a time
            opened: dict[str, float] = {}
            if self.connection is None:
                self.connection = self._open(opened)
            try:
                self.connection.request("GET", self.path, headers={"Host": self.host})
                response = self.connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                self.connection.close()
                self.connection = None
                raise
            return response.status, opened or None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dependency", required=True)
    parser.add_argument("--ca-file", required=True)
    options = parser.parse_args()
    pool = Pool(options.dependency, options.ca_file)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = (json.dumps(body) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, {"ok": True})
                return
            try:
                status, opened = pool.call()
            except (OSError, http.client.HTTPException) as error:
                self._send(502, {"error": repr(error)})
                return
            self._send(200, {"dependency_status": status, "opened": opened})

    server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    server.daemon_threads = True
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
