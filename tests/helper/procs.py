"""Real processes for the helper tests: the lanes-agent, the prewarm command and the sample app.

Everything here talks to real sockets with the standard library's own HTTP client (``http.client``), so the
agent's server is tested against an independent implementation, not against the helper's own client.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SAMPLE_APP = Path(__file__).resolve().parent / "sample_app.py"
HELPER_COMMAND = (sys.executable, "-m", "helper")


def free_port() -> int:
    """A port that is free on both 127.0.0.1 and :: right now (the agent binds every interface)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe6:
                probe6.bind(("::", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any LANES_* leaking in, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LANES_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def http_request(
    port: int,
    path: str,
    *,
    method: str = "GET",
    timeout: float = 5.0,
    host: str = "127.0.0.1",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def wait_for(predicate: Any, timeout: float, interval: float = 0.02, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def rss_kb(pid: int) -> int:
    """Resident set size (VmRSS) of a process, in kB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process in clock ticks (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@dataclass
class Agent:
    """A running ``lanes-helper agent`` process with its stdout captured to a file."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(
        cls,
        tmp_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        command: Sequence[str] = HELPER_COMMAND,
        wait: bool = True,
    ) -> Agent:
        port = free_port()
        log_path = tmp_path / f"agent-{port}.log"
        environment = base_env({"LANES_AGENT_PORT": str(port), **(env or {})})
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [*command, "agent"], cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT
            )
        agent = cls(port, process, log_path)
        if wait:
            wait_for(agent.listening, 15, what=f"agent on port {port} to listen")
        return agent

    def listening(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"agent exited with {self.process.returncode}:\n{self.log_text()}")
        return self.get("/healthz")[0] == 200

    def get(self, path: str, **kwargs: Any) -> tuple[int, bytes]:
        status, body, _ = http_request(self.port, path, **kwargs)
        return status, body

    def json(self, path: str, **kwargs: Any) -> Any:
        status, body = self.get(path, **kwargs)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def ready(self) -> bool:
        return self.get("/ready")[0] == 200

    def wait_ready(self, timeout: float = 15.0) -> float:
        """Wait for /ready to answer 200; returns the monotonic time it was seen."""
        wait_for(self.ready, timeout, interval=0.01, what="agent /ready")
        return time.monotonic()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def logs(self) -> list[dict[str, Any]]:
        """Every stdout line, each of which must be one JSON object."""
        lines = [line for line in self.log_text().splitlines() if line.strip()]
        return [json.loads(line) for line in lines]

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@dataclass
class SampleApp:
    """tests/helper/sample_app.py in its own process; ``restart()`` starts it again on the same port and address."""

    port: int
    process: subprocess.Popen[bytes]
    bind: str = "127.0.0.1"
    args: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        *,
        listen_delay: float = 0.0,
        listen_file: str = "",
        ready_delay: float = 0.0,
        ready_file: str = "",
        cold_requests: int = 0,
        cold_penalty: float = 0.0,
        bind: str = "127.0.0.1",
        v6only: bool = False,
        require_headers: Sequence[str] = (),
        port: int | None = None,
        wait: bool = True,
    ) -> SampleApp:
        args = [
            f"--port={port or free_port()}",
            f"--listen-delay={listen_delay}",
            f"--listen-file={listen_file}",
            f"--ready-delay={ready_delay}",
            f"--ready-file={ready_file}",
            f"--cold-requests={cold_requests}",
            f"--cold-penalty={cold_penalty}",
            f"--bind={bind}",
            *(["--v6only"] if v6only else []),
            *(f"--require-header={header}" for header in require_headers),
        ]
        app = cls(int(args[0].split("=")[1]), cls._spawn(args), bind, args)
        if wait:
            app.wait_listening()
        return app

    @staticmethod
    def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(SAMPLE_APP), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=base_env(),
        )

    def restart(self, *, wait: bool = True, **changes: str) -> None:
        """Start the app again (after :meth:`crash`), same options; ``changes`` overrides some (``listen_delay``)."""
        assert self.process.poll() is not None, "crash() or stop() it first"
        args = list(self.args)
        for key, value in changes.items():
            flag = "--" + key.replace("_", "-") + "="
            args = [arg for arg in args if not arg.startswith(flag)] + [flag + str(value)]
        self.process = self._spawn(args)
        if wait:
            self.wait_listening()

    def crash(self) -> None:
        """SIGKILL, as the OOM killer or a crash ends a container's process: no goodbye, the port closes."""
        self.process.kill()
        self.process.wait(5)

    def accepting(self) -> bool:
        host = "::1" if self.bind == "::" else "127.0.0.1" if self.bind == "0.0.0.0" else self.bind
        try:
            with socket.create_connection((host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def wait_listening(self, timeout: float = 15.0) -> None:
        wait_for(self.accepting, timeout, what=f"sample app on {self.port}")

    def stats(self) -> dict[str, Any]:
        status, body, _ = http_request(self.port, "/stats", host=self.bind)
        assert status == 200
        return json.loads(body)

    def latency(self, path: str = "/api/items") -> float:
        """Seconds one request takes end to end, on its own connection."""
        started = time.perf_counter()
        status, _, _ = http_request(self.port, path, host=self.bind)
        assert status == 200
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def run_helper(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 60.0,
    command: Sequence[str] = HELPER_COMMAND,
) -> subprocess.CompletedProcess[str]:
    """Run ``lanes-helper ARGS`` to completion and capture its output."""
    return subprocess.run(
        [*command, *args],
        cwd=REPO,
        env=base_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
