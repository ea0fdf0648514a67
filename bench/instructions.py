"""Instructions per admission request, counted by callgrind: the admission comparison that machine load cannot skew.

Throughput at saturation (bench/admission.py) is the number users care about, but on a shared 2-core machine it
moves by tens of percent with whatever else runs, and a ratio of two servers measured minutes apart inherits that
noise. The number of instructions a server executes per request does not depend on load: the same binary, the same
body and the same code path execute the same instructions. So each Python server is also run under
``valgrind --tool=callgrind`` and driven with a fixed number of requests; its counters are zeroed before and dumped
after each batch (``callgrind_control``), and the total is divided by the requests. For servers on one interpreter
with similar work, cycles follow instructions closely, so ``floor / lanes`` in instructions is the throughput ratio
the machine would show when idle. It is reported next to the wall-clock ratio, not instead of it.

What it counts: everything the server process executes per request (TLS, HTTP parsing, ASGI, the review's JSON,
Lanes' work, metrics, the log line). Not the kernel's share (syscalls, loopback TCP), which is the same for every
server answering the same bodies, and not the client.

Cost: under callgrind a server runs ~50x slower; its start-up took 14-24 s here and each batch a few seconds, about
25 s per server, 2.5 min for the six. It runs only in a full (not ``--quick``) ``make bench``.
"""

from __future__ import annotations

import http.client
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import BenchError, Tls, free_port, require, say, wait_for

WARMUP_REQUESTS = 40
"""Requests before counting starts: imports done lazily on the first request, caches filled, allocator warm."""
CONNECTIONS = 4
"""Keep-alive connections the requests rotate over (the API server keeps a few open to each webhook pod)."""


def check_tools() -> None:
    require("valgrind", "apt-get install valgrind (make system-deps does)")
    require("callgrind_control", "apt-get install valgrind (make system-deps does)")


def dump_totals(paths: Sequence[Path]) -> int:
    """The instructions (Ir) in callgrind dump files: the ``totals:`` line of each (``summary:`` in old formats)."""
    total = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("totals:", "summary:")):
                total += int(line.split()[1])
                break
        else:
            raise BenchError(f"{path}: no totals line; not a callgrind dump?")
    return total


class CallgrindProcess:
    """A process run under callgrind whose counters are zeroed and dumped on demand."""

    def __init__(self, name: str, command: Sequence[str], work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.prefix = f"callgrind.{name}"
        for old in work.glob(self.prefix + ".*"):
            old.unlink()
        self.log = work / f"{name}.callgrind.log"
        # callgrind's defaults (no cache or branch simulation): only the instruction count is wanted.
        with self.log.open("wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work / self.prefix}.%p", *command],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def _control(self, option: str) -> None:
        done = subprocess.run(["callgrind_control", option, str(self.pid)], capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0 or "Error" in done.stdout + done.stderr:
            raise BenchError(f"callgrind_control {option} {self.pid}: {(done.stdout + done.stderr).strip()[-300:]}")

    def zero(self) -> None:
        self._control("--zero")

    def dump(self) -> int:
        """Instructions executed since the last :meth:`zero` or dump (callgrind writes a new numbered dump file and
        starts counting anew)."""
        before = set(self.work.glob(f"{self.prefix}.{self.pid}*"))
        self._control("--dump")
        deadline = time.monotonic() + 30
        while True:
            new = sorted(set(self.work.glob(f"{self.prefix}.{self.pid}*")) - before)
            if new:
                try:
                    return dump_totals(new)
                except BenchError:
                    pass  # still being written
            if time.monotonic() > deadline:
                raise BenchError(f"callgrind wrote no dump for {self.pid} within 30 s")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _post_many(port: int, path: str, body: bytes, requests: int, tls: Tls) -> None:
    context = tls.client_context()
    connections = [http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=300)
                   for _ in range(CONNECTIONS)]
    try:
        for i in range(requests):
            connection = connections[i % CONNECTIONS]
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200 or b'"allowed":true' not in answer:
                raise BenchError(f"POST {path}: HTTP {response.status}: {answer[:200]!r}")
    finally:
        for connection in connections:
            connection.close()


def per_request(
    name: str,
    command: Callable[[int, Tls], list[str]],
    path: str,
    bodies: dict[str, bytes],
    requests: dict[str, int],
    tls: Tls,
    work: Path,
) -> dict[str, int]:
    """Instructions the server ``command`` executes per admission request, for each body."""
    port = free_port()
    started = time.monotonic()
    server = CallgrindProcess(name, command(port, tls), work)
    try:
        first = next(iter(bodies.values()))

        def answers() -> bool:
            try:
                _post_many(port, path, first, 1, tls)
                return True
            except (OSError, http.client.HTTPException):
                return False

        wait_for(answers, 600, f"{name} under callgrind", server.process, server.log, interval=2.0)
        say(f"admission instructions: {name} up under callgrind in {time.monotonic() - started:.0f}s")
        for body in bodies.values():
            _post_many(port, path, body, WARMUP_REQUESTS, tls)
        out: dict[str, int] = {}
        for body_name, body in bodies.items():
            server.zero()
            _post_many(port, path, body, requests[body_name], tls)
            out[body_name] = round(server.dump() / requests[body_name])
        return out
    finally:
        server.stop()
