"""A sample app for the agent's tests: a real HTTP server in its own process, cold at start like real apps.

- ``--listen-delay S``: sleep before binding the port (a slow process start);
- ``--listen-file PATH``: do not bind the port until PATH exists (the test decides when the app starts);
- ``--ready-delay S``: once listening, /healthz answers 503 for S seconds (port open, app not yet able to serve);
- ``--ready-file PATH``: /healthz answers 503 until PATH exists (the test decides when the app is ready);
- ``--cold-requests N --cold-penalty S``: the first N requests to /api/* take S seconds longer (a lazy cache being
  filled, a JIT warming up); later ones are fast;
- ``--bind ADDRESS``: listen there instead of 127.0.0.1 (``127.0.0.2`` plays a pod IP: every 127.0.0.0/8 address is
  on the loopback interface on Linux, bindable without root; ``::`` with ``--v6only`` plays an IPv6-only app);
- ``--require-header NAME=VALUE`` (repeatable): /healthz answers 403 unless the request carries that header (a probe
  with ``httpHeaders``; ``Host=...`` checks the Host header, a virtual host that validates it).

Endpoints: /healthz, /api/<anything>, /api/fail (500), /hang (never answers in time), /stats (JSON counters).
Prints ``listening <port>`` on stdout once bound.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Counters:
    def __init__(self, cold_requests: int) -> None:
        self.lock = threading.Lock()
        self.cold_left = cold_requests
        self.api_requests = 0
        self.warmup_requests = 0

    def take_cold(self) -> bool:
        with self.lock:
            self.api_requests += 1
            if self.cold_left > 0:
                self.cold_left -= 1
                return True
            return False


def make_handler(options: argparse.Namespace, counters: Counters, ready_at: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.headers.get("X-Lanes-Warmup") == "1":
                with counters.lock:
                    counters.warmup_requests += 1
            if self.path == "/healthz":
                missing = [
                    f"{name}={value}" for name, value in options.required if self.headers.get(name) != value
                ]
                if missing:
                    self._send(403, ("missing " + " ".join(missing) + "\n").encode())
                    return
                ok = time.monotonic() >= ready_at and (not options.ready_file or os.path.exists(options.ready_file))
                self._send(200 if ok else 503, b"ok\n" if ok else b"starting\n")
            elif self.path == "/stats":
                with counters.lock:
                    body = {
                        "api_requests": counters.api_requests,
                        "warmup_requests": counters.warmup_requests,
                        "cold_left": counters.cold_left,
                    }
                self._send(200, json.dumps(body).encode(), "application/json")
            elif self.path == "/hang":
                time.sleep(30)
                self._send(200, b"late\n")
            elif self.path == "/api/fail":
                self._send(500, b"boom\n")
            elif self.path.startswith("/api/"):
                if counters.take_cold():
                    time.sleep(options.cold_penalty)
                self._send(200, b'{"items": [1, 2, 3]}\n', "application/json")
            else:
                self._send(404, b"not found\n")

        do_POST = do_GET

    return Handler


def _v6_server(v6only: bool) -> type[ThreadingHTTPServer]:
    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6

        def server_bind(self) -> None:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
            super().server_bind()

    return Server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--listen-delay", type=float, default=0.0)
    parser.add_argument("--ready-delay", type=float, default=0.0)
    parser.add_argument("--ready-file", default="")
    parser.add_argument("--listen-file", default="")
    parser.add_argument("--cold-requests", type=int, default=0)
    parser.add_argument("--cold-penalty", type=float, default=0.0)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--v6only", action="store_true")
    parser.add_argument("--require-header", action="append", default=[])
    options = parser.parse_args()
    options.required = [tuple(item.split("=", 1)) for item in options.require_header]
    time.sleep(options.listen_delay)
    while options.listen_file and not os.path.exists(options.listen_file):
        time.sleep(0.01)
    counters = Counters(options.cold_requests)
    server_class = _v6_server(options.v6only) if ":" in options.bind else ThreadingHTTPServer
    server = server_class((options.bind, options.port), make_handler(options, counters, 0.0))
    server.daemon_threads = True
    ready_at = time.monotonic() + options.ready_delay
    server.RequestHandlerClass = make_handler(options, counters, ready_at)
    print(f"listening {options.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.05)
    sys.exit(0)


if __name__ == "__main__":
    main()
