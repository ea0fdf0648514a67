"""The Lanes sample app: one standard-library file, ``python3 app.py``, used by the tests, the benchmarks and the demo.

It behaves like the services Lanes is meant for, with the knobs the lossless claims depend on:

- ``PORT`` (8080) and ``BIND`` (``0.0.0.0``; ``::`` for IPv6, ``127.0.0.1`` for loopback only);
- ``NAME`` (default: the hostname) and ``LANE`` (default: ``LANES_LANE``, else ``base``) say who answered;
- ``COLD_START`` seconds before the port is bound (a slow start: connections are refused meanwhile);
- ``SIGTERM``: ``graceful`` (default) stops accepting, finishes the requests in flight, closes idle keep-alive
  connections and exits, bounded by ``GRACE`` seconds (5); ``abrupt`` exits at once, resetting whatever is open;
- ``CALL``: comma-separated downstreams, each ``URL`` or ``HOST@URL`` (HOST becomes the Host header, so a service
  can reach the next hop through a shared gateway). Each request calls them in order, forwarding ``x-lane``,
  ``baggage``, ``traceparent`` and ``x-request-id``; ``CALL_TIMEOUT`` seconds each (5).

HTTP/1.1 with keep-alive, one thread per connection. Every path except ``/healthz`` answers JSON
``{"service", "lane", "pod", "path", "received": {"x-lane", "baggage"}, "calls": [...]}``; ``/healthz`` answers 200
``ok`` once listening. A ``sleep=SECONDS`` query parameter delays the answer (a request that is in flight when
SIGTERM arrives). One JSON log line per start and stop goes to stdout; ``ACCESS_LOG=1`` adds one per request.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FORWARDED_HEADERS = ("x-lane", "baggage", "traceparent", "x-request-id")


def log(event: str, **fields: object) -> None:
    print(json.dumps({"ts": round(time.time(), 3), "event": event, **fields}), flush=True)


def parse_calls(value: str) -> list[tuple[str | None, str]]:
    """``CALL`` -> [(host header or None, url)]. ``HOST@URL`` only when the part before ``@`` has no scheme, so a
    URL with user info (``http://u@h/``) stays a URL."""
    calls: list[tuple[str | None, str]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, sep, url = item.partition("@")
        if sep and "://" not in host and "://" in url:
            calls.append((host, url))
        else:
            calls.append((None, item))
    for _, url in calls:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"CALL: {url!r} is not an http(s) URL (expected URL or HOST@URL, comma-separated)")
    return calls


def call_downstream(host: str | None, url: str, headers: dict[str, str], timeout: float) -> object:
    """GET one downstream with the forwarded headers; its JSON, or ``{"error": ...}`` (never raises)."""
    parsed = urllib.parse.urlsplit(url)
    connection_class = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parsed.hostname, parsed.port, timeout=timeout)
    target = parsed.path or "/"
    if parsed.query:
        target += "?" + parsed.query
    try:
        send = dict(headers)
        if host:
            send["Host"] = host
        connection.request("GET", target, headers=send)
        response = connection.getresponse()
        body = response.read()
        try:
            return json.loads(body)
        except ValueError:
            return {"error": f"HTTP {response.status}, not JSON: {body[:200]!r}", "url": url}
    except (OSError, http.client.HTTPException) as error:
        return {"error": f"{type(error).__name__}: {error}", "url": url}
    finally:
        connection.close()


class Server(ThreadingHTTPServer):
    """Threaded server that knows its open connections and which of them are busy, so a graceful stop can finish
    the busy ones and close the idle ones."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], settings: dict[str, object]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.settings = settings
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.busy: set[socket.socket] = set()
        self.draining = False
        super().__init__(address, Handler)

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        with self.lock:
            self.open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[no-untyped-def]
        with self.lock:
            self.open.discard(request)
            self.busy.discard(request)
        super().shutdown_request(request)

    def close_idle(self) -> None:
        with self.lock:
            idle = self.open - self.busy
        for sock in idle:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def busy_count(self) -> int:
        with self.lock:
            return len(self.busy)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        if os.environ.get("ACCESS_LOG") == "1":
            log("request", client=self.client_address[0], line=format % args)

    def handle_one_request(self) -> None:
        # As BaseHTTPRequestHandler's, but the connection counts as busy from the request line on, so a graceful
        # stop never closes a connection whose request it has started reading.
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except OSError:
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        with self.server.lock:
            self.server.busy.add(self.request)
        try:
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            if not self.parse_request():
                return
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(501, f"Unsupported method ({self.command!r})")
                return
            method()
            self.wfile.flush()
        finally:
            with self.server.lock:
                self.server.busy.discard(self.request)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.server.draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path == "/healthz":
            self._reply(200, b"ok", "text/plain")
            return
        query = urllib.parse.parse_qs(parsed.query)
        if "sleep" in query:
            try:
                time.sleep(min(float(query["sleep"][0]), 300.0))
            except ValueError:
                self._reply(400, b'{"error": "sleep must be a number of seconds"}', "application/json")
                return
        settings = self.server.settings
        forwarded = {name: value for name in FORWARDED_HEADERS if (value := self.headers.get(name)) is not None}
        calls = [
            call_downstream(host, url, forwarded, float(settings["call_timeout"]))  # type: ignore[arg-type]
            for host, url in settings["calls"]  # type: ignore[attr-defined]
        ]
        body = {
            "service": settings["name"],
            "lane": settings["lane"],
            "pod": settings["pod"],
            "path": self.path,
            "received": {"x-lane": self.headers.get("x-lane"), "baggage": self.headers.get("baggage")},
            "calls": calls,
        }
        self._reply(200, json.dumps(body).encode(), "application/json")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET


def settings_from_env(env: dict[str, str]) -> dict[str, object]:
    """The environment, checked: a bad value is a one-line error, never a stack trace."""
    pod = env.get("HOSTNAME") or socket.gethostname()
    mode = env.get("SIGTERM", "graceful")
    if mode not in ("graceful", "abrupt"):
        raise ValueError(f"SIGTERM must be 'graceful' or 'abrupt', not {mode!r}")
    numbers = {}
    for key, default in (("PORT", "8080"), ("COLD_START", "0"), ("GRACE", "5"), ("CALL_TIMEOUT", "5")):
        try:
            numbers[key] = float(env.get(key, default) or default)
        except ValueError:
            raise ValueError(f"{key} must be a number, not {env[key]!r}") from None
    if not numbers["PORT"].is_integer() or not 0 <= numbers["PORT"] <= 65535:
        raise ValueError(f"PORT must be a port number, not {env['PORT']!r}")
    return {
        "port": int(numbers["PORT"]),
        "bind": env.get("BIND", "0.0.0.0"),
        "name": env.get("NAME") or pod,
        "lane": env.get("LANE") or env.get("LANES_LANE") or "base",
        "pod": pod,
        "cold_start": numbers["COLD_START"],
        "sigterm": mode,
        "grace": numbers["GRACE"],
        "call_timeout": numbers["CALL_TIMEOUT"],
        "calls": parse_calls(env.get("CALL", "")),
    }


def main() -> int:
    try:
        settings = settings_from_env(dict(os.environ))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if settings["sigterm"] == "abrupt":
            log("stop", mode="abrupt", signal=signal.Signals(signum).name)
            os._exit(0)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    if stop.wait(float(settings["cold_start"])):  # type: ignore[arg-type]
        log("stop", mode="graceful", during="cold start")
        return 0
    try:
        server = Server((str(settings["bind"]), int(settings["port"])), settings)  # type: ignore[call-overload]
    except OSError as error:
        print(f"error: cannot listen on {settings['bind']}:{settings['port']}: {error}", file=sys.stderr)
        return 1
    # SIGTERM must reach the main thread: CPython runs Python signal handlers only there, and a signal the kernel
    # hands to a request thread does not wake the main thread's wait, so the app ignored SIGTERM until the kubelet's
    # SIGKILL now and then. The server thread, and every request thread it starts, inherit this mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    log("start", service=settings["name"], lane=settings["lane"], pod=settings["pod"],
        port=server.server_address[1], sigterm=settings["sigterm"],
        cold_start_s=round(time.monotonic() - started, 3), calls=[url for _, url in settings["calls"]])  # type: ignore[attr-defined]
    while not stop.wait(3600):
        pass
    # Graceful: stop accepting (new connections are refused), answer what is in flight with Connection: close,
    # close idle keep-alive connections, and exit once nothing is busy or GRACE has passed.
    stopping = time.monotonic()
    server.draining = True
    server.shutdown()
    server.socket.close()
    deadline = stopping + float(settings["grace"])  # type: ignore[arg-type]
    while True:
        server.close_idle()
        busy = server.busy_count()
        if busy == 0 or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    log("stop", mode="graceful", in_flight_left=busy, drain_s=round(time.monotonic() - stopping, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
