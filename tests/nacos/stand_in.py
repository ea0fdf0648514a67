"""A recording stand-in for a Nacos server: checks the shape of the agent's requests, for 2.x and 3.x.

A stand-in because no Nacos 3.x server can be had here (Maven Central has no server build of it) and because a
real server cannot be made to answer slowly on demand. The real 2.3.2 server is in test_nacos_real.py; this one
answers just enough (login, register, heartbeat, list, patch, delete) in the shapes of the Nacos sources
(v1 answers ``ok`` text, v3 answers ``{"code": 0, "data": ...}``) and records every request.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "stand-in-token"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str
    raw_path: str


@dataclass
class StandIn:
    hosts: list[dict[str, Any]] = field(default_factory=list)
    """What ``instance/list`` answers (manage mode looks for the app's instance there)."""
    beat_interval_ms: int = 1000
    reject_login: bool = False
    requests: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> StandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                query = {key: values[0] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
                request = Request(self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()},
                                  body, self.path)  # fmt: skip
                with stand_in._lock:
                    stand_in.requests.append(request)
                status, answer = stand_in.answer(request)
                data = answer.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client the agent cut off (the drain ended) is expected here, not an error

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def answer(self, request: Request) -> tuple[int, str]:
        v3 = "/v3/" in request.path
        if request.path.endswith("/login"):
            if self.reject_login:
                return 403, "user not found!"
            return 200, json.dumps({"accessToken": TOKEN, "tokenTtl": 18000, "globalAdmin": True})
        if request.headers.get("accesstoken") != TOKEN:
            return 403, '{"status":403,"message":"token invalid!"}'
        if request.path.endswith("/instance/beat"):
            return 200, json.dumps({"clientBeatInterval": self.beat_interval_ms, "code": 10200})
        if request.path.endswith("/instance/list"):
            data = {"name": request.query.get("serviceName"), "hosts": self.hosts}
            return 200, json.dumps({"code": 0, "message": "success", "data": data} if v3 else data)
        return 200, json.dumps({"code": 0, "message": "success", "data": "ok"}) if v3 else "ok"

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def calls(self, method: str, suffix: str) -> list[Request]:
        return [r for r in self.snapshot() if r.method == method and r.path.endswith(suffix)]

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
