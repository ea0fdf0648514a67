"""The Lanes controller next to the local control plane: as its own process, or inside this one.

Shared by ``make demo`` and the controller tests. :class:`LocalController` is ``python -m webhook.controller``,
exactly what the chart's controller container runs (so flag parsing, signal handling and the Lease release on exit
are exercised). :func:`running_controller` runs the same :class:`~webhook.controller.Controller` in this process,
for callers that want to read its metrics registry or stop it at a precise moment.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.controlplane.cluster import free_port
from devtools.local_webhook import spawn_logged
from webhook.cli.controller import api_client
from webhook.controller import Controller, ControllerMetrics, ControllerSettings

_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) ([-+0-9.eEinfNa]+)$")


class LocalControllerError(RuntimeError):
    """The controller process exited or never served its metrics; the message carries its log tail."""


@dataclass
class LocalController:
    """``python -m webhook.controller *args`` with its metrics on a free loopback port.

    Ready means ``/metrics`` answers: by then the command line was accepted and the loops were started.
    """

    args: list[str]
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 30) -> LocalController:
        command = [
            sys.executable,
            "-m",
            "webhook.controller",
            f"--metrics-port={self.metrics_port}",
            "--metrics-host=127.0.0.1",
            *self.args,
        ]
        self.process = spawn_logged(command, self.log_path)
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.process.poll() is not None:
                raise LocalControllerError(
                    f"controller exited with {self.process.returncode}; log {self.log_path}:\n{self.log()[-3000:]}"
                )
            with contextlib.suppress(OSError):
                if self.metrics():
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise LocalControllerError(
                    f"controller metrics on :{self.metrics_port} not answering after {ready_timeout:.0f}s; "
                    f"log {self.log_path}:\n{self.log()[-3000:]}"
                )
            time.sleep(0.1)

    def metrics(self) -> dict[str, float]:
        """The current samples, keyed by name with labels as printed (``name{label="value"}``)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match:
                out[match.group(1)] = float(match.group(2))
        return out

    def kill(self) -> None:
        """SIGKILL: no Lease release, as when a node dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 15) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def client_for(kubeconfig: Path) -> Any:
    """The ApiClient the controller's own command line would build (pool size, retries)."""
    return api_client(str(kubeconfig), in_cluster=False)


@contextlib.contextmanager
def running_controller(settings: ControllerSettings, kubeconfig: Path) -> Iterator[Controller]:
    """A controller in this process, with its own ApiClient and metrics registry."""
    controller = Controller(settings, client_for(kubeconfig), metrics=ControllerMetrics())
    controller.start()
    try:
        yield controller
    finally:
        controller.stop(timeout=10)
