"""Load client of the real-node lossless benchmark (bench/lossless_node.py); runs inside a pod, standard library only.

It sits in a pod on purpose: a client in the node's own namespace is source-NATed to the bridge address and
conntrack clashes then cost about 1 % of connects even without a rollout (shared/notes/real-node.md). The bench
mounts this file from a ConfigMap and drives it over a small control API on port 9000:

- ``POST /start`` with JSON ``{"host", "port", "path", "rate", "modes", "timeout", "connections", "max_seconds"}``
  starts an open-loop load: for each mode, ``rate`` requests per second on a fixed schedule (a slow answer never
  delays the next request, so a stall shows up as latency and failures instead of fewer requests); with
  ``"check_calls": true`` a 200 whose JSON body shows a failed downstream call (the sample app answers 200 with
  ``{"calls": [{"error": ...}]}`` when its ``CALL`` chain breaks) counts as failed, outcome ``downstream``;
- ``POST /stop`` ends it and answers every request as ``[mode, start_epoch, latency_s, outcome, retried]``
  (outcome ``ok``, or the error: ``timeout``, ``reset``, ``refused``, ``closed``, ``http-503``, ...).

Modes: ``new`` opens a TCP connection per request (each one goes through kube-proxy's load balancing);
``keepalive`` spreads requests over ``connections`` persistent HTTP/1.1 connections, as a connection pool does. A
request on a reused connection that fails before any byte of the answer arrived is retried once on a new
connection, as Go's net/http and urllib3 do for idempotent requests (the server may have closed an idle
connection just as the request went out); ``retried`` says so, and the bench reports failures with and without it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTROL_PORT = 9000


def failed_call(answer: object) -> bool:
    """Whether a sample-app answer shows a failed call anywhere down its chain (a -> b -> c)."""
    if not isinstance(answer, dict):
        return False
    calls = answer.get("calls")
    return isinstance(calls, list) and any(
        (isinstance(call, dict) and "error" in call) or failed_call(call) for call in calls
    )


def classify(error: BaseException) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, ConnectionResetError | BrokenPipeError):
        return "reset"
    if isinstance(error, http.client.RemoteDisconnected | http.client.IncompleteRead):
        return "closed"
    if isinstance(error, OSError):
        return f"oserror-{error.errno}"
    return type(error).__name__


class Load:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.host = str(settings["host"])
        self.port = int(settings.get("port", 80))
        self.path = str(settings.get("path", "/"))
        self.rate = float(settings.get("rate", 100))
        self.modes = list(settings.get("modes", ["keepalive", "new"]))
        self.timeout = float(settings.get("timeout", 2.0))
        self.connections = int(settings.get("connections", 8))
        self.max_seconds = float(settings.get("max_seconds", 600))
        self.check_calls = bool(settings.get("check_calls", False))
        self.records: list[list[Any]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def record(self, mode: str, started: float, latency: float, outcome: str, retried: bool) -> None:
        with self.lock:
            self.records.append([mode, round(started, 4), round(latency, 5), outcome, retried])

    # -- one request --------------------------------------------------------------------------------------

    def _exchange(self, connection: http.client.HTTPConnection) -> str:
        connection.request("GET", self.path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            return f"http-{response.status}"
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
        if self.check_calls:
            try:
                if failed_call(json.loads(body)):
                    return "downstream"
            except ValueError:
                return "not-json"
        return "ok"

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def one_new(self, scheduled: float) -> None:
        connection = self._connect()  # connects on the first request: the connect time counts
        try:
            outcome = self._exchange(connection)
        except Exception as error:  # every failure is a result here
            outcome = classify(error)
        finally:
            connection.close()
        self.record("new", scheduled, time.time() - scheduled, outcome, False)

    def one_keepalive(self, holder: list[http.client.HTTPConnection | None], scheduled: float) -> None:
        connection = holder[0]
        reused = connection is not None and connection.sock is not None
        if connection is None:
            connection = holder[0] = self._connect()
        retried = False
        try:
            outcome = self._exchange(connection)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
            connection.close()
            if reused:
                # the pooled connection was closed under us before any answer: one retry on a fresh one
                retried = True
                connection = holder[0] = self._connect()
                try:
                    outcome = self._exchange(connection)
                except Exception as again:
                    outcome = classify(again)
                    connection.close()
            else:
                outcome = classify(error)
        except Exception as error:
            outcome = classify(error)
            connection.close()
        self.record("keepalive", scheduled, time.time() - scheduled, outcome, retried)

    # -- schedules ----------------------------------------------------------------------------------------

    def _schedule(self, mode: str, work: queue.Queue[float | None], workers: int) -> None:
        interval = 1.0 / self.rate
        begin = time.time()
        n = 0
        while not self.stop.is_set() and time.time() - begin < self.max_seconds:
            due = begin + n * interval
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            work.put(due)
            n += 1
        for _ in range(workers):
            work.put(None)

    def _new_worker(self, work: queue.Queue[float | None]) -> None:
        while (due := work.get()) is not None:
            self.one_new(due)

    def _keepalive_worker(self, work: queue.Queue[float | None]) -> None:
        holder: list[http.client.HTTPConnection | None] = [None]
        while (due := work.get()) is not None:
            self.one_keepalive(holder, due)
        if holder[0] is not None:
            holder[0].close()

    def start(self) -> None:
        for mode in self.modes:
            work: queue.Queue[float | None] = queue.Queue()
            if mode == "new":
                # enough threads that a 2 s timeout at this rate never starves the schedule
                workers = max(8, int(self.rate * self.timeout * 1.5))
                target = self._new_worker
            elif mode == "keepalive":
                workers = self.connections
                target = self._keepalive_worker
            else:
                raise ValueError(f"unknown mode {mode!r}")
            for _ in range(workers):
                self.threads.append(threading.Thread(target=target, args=(work,), daemon=True))
            self.threads.append(threading.Thread(target=self._schedule, args=(mode, work, workers), daemon=True))
        for thread in self.threads:
            thread.start()

    def finish(self) -> list[list[Any]]:
        self.stop.set()
        for thread in self.threads:
            thread.join(self.timeout * 3 + 5)
        with self.lock:
            return sorted(self.records, key=lambda r: r[1])


class Control(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    current: Load | None = None

    def log_message(self, *args: object) -> None:
        return

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(200, {"running": Control.current is not None})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/start":
            if Control.current is not None:
                self._answer(409, {"error": "a load is running; POST /stop first"})
                return
            try:
                load = Load(json.loads(body or b"{}"))
                load.start()
            except (ValueError, KeyError) as error:
                self._answer(400, {"error": str(error)})
                return
            Control.current = load
            self._answer(200, {"started": time.time()})
        elif self.path == "/stop":
            load, Control.current = Control.current, None
            self._answer(200, {"records": load.finish() if load else []})
        else:
            self._answer(404, {"error": "POST /start or /stop"})


def main() -> int:
    # PID 1 of its pod: without a handler SIGTERM would be ignored and every delete would wait the grace period
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", CONTROL_PORT), Control)
    server.daemon_threads = True
    print(json.dumps({"event": "start", "port": CONTROL_PORT}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
