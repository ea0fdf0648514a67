"""Measure the lanes-agent's footprint: resident memory (VmRSS) by phase, and how fast it notices a ready app.

Run from the repository root:

    python -m tests.helper.measure_rss                       # the agent from this checkout
    python -m tests.helper.measure_rss --agent /venv/bin/lanes-helper   # an installed agent (as in the image)
    python -m tests.helper.measure_rss --json

Scenario (real processes, loopback only, bounded in time): the sample app starts cold and answers its readiness
path after a delay; the agent waits for it, runs 400 warm-up requests over 8 connections, becomes ready, is
scraped and probed, then gets three concurrent /prestop calls (a pod with three containers) with a slow
going-offline receiver, and SIGTERM. VmRSS is read from /proc/PID/status every 5 ms in each phase.

Memory is reported, never asserted here; tests/helper/test_wheel_install.py holds the installed agent to the
20 MB budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.helper.procs import HELPER_COMMAND, Agent, SampleApp, http_request, rss_kb
from tests.helper.servers import Receiver


@dataclass
class Footprint:
    startup_peak_kb: int
    """Max VmRSS from start until /ready (waiting for the app and the self warm-up)."""
    idle_kb: int
    """VmRSS once ready, after probes and metric scrapes."""
    drain_peak_kb: int
    """Max VmRSS while three /prestop calls are held for the drain."""
    lifetime_peak_kb: int
    """VmHWM: the process's peak resident memory over its life."""
    warmup_requests_ok: int
    warmup_seconds: float
    app_ready_to_agent_ready_s: float
    """App's readiness path answering 200 -> agent's /ready answering 200, without warm-up requests (median)."""
    exit_code: int


class Sampler:
    """Samples VmRSS of a pid every ``interval`` seconds in a thread; ``take()`` returns and resets the max."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except (OSError, RuntimeError):
                return
            time.sleep(self.interval)

    def take(self) -> int:
        peak, self.peak = self.peak, 0
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def _hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def _first_200(port: int, path: str, timeout: float) -> float:
    """Poll every millisecond; the monotonic time ``path`` first answered 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_request(port, path, timeout=1)[0] == 200:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.001)
    raise TimeoutError(f"{path} on {port} never answered 200")


def ready_latency(workdir: Path, command: Sequence[str], runs: int = 3) -> float:
    """Median seconds from the app's readiness path answering 200 to the agent's /ready answering 200."""
    samples = []
    for _ in range(runs):
        app = SampleApp.start(ready_delay=0.8)
        agent = Agent.start(
            workdir, {"LANES_APP_PORT": str(app.port), "LANES_APP_READY_PATH": "/healthz"}, command=command
        )
        try:
            app_ready = _first_200(app.port, "/healthz", 10)
            agent_ready = _first_200(agent.port, "/ready", 10)
            samples.append(agent_ready - app_ready)
        finally:
            agent.stop()
            app.stop()
    return sorted(samples)[len(samples) // 2]


def measure(
    command: Sequence[str] = HELPER_COMMAND, workdir: Path | None = None, *, latency_runs: int = 3
) -> Footprint:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="lanes-rss-"))
    app = SampleApp.start(ready_delay=0.5, cold_requests=400, cold_penalty=0.002)
    with Receiver(delay=5) as receiver:
        agent = Agent.start(
            workdir,
            {
                "LANES_APP_PORT": str(app.port),
                "LANES_APP_READY_PATH": "/healthz",
                "LANES_WARMUP_REQUESTS": "GET /api/items x400 c8",
                "LANES_WARMUP": "60",
                "LANES_WARMUP_CURVE": "k=2",
                "LANES_DRAIN": "1",
                "LANES_OFFLINE_NOTIFY": receiver.url,
            },
            command=command,
        )
        sampler = Sampler(agent.process.pid)
        try:
            agent.wait_ready(timeout=30)
            startup_peak = sampler.take()
            for _ in range(20):  # a few probe periods and scrapes
                agent.get("/ready")
                agent.get("/healthz")
                agent.get("/metrics")
                agent.get("/status")
            time.sleep(0.5)
            idle = rss_kb(agent.process.pid)
            status = agent.json("/status")
            sampler.take()
            callers = [
                threading.Thread(target=http_request, args=(agent.port, "/prestop"), kwargs={"timeout": 30})
                for _ in range(3)
            ]
            for caller in callers:
                caller.start()
            for caller in callers:
                caller.join()
            drain_peak = sampler.take()
            lifetime_peak = _hwm_kb(agent.process.pid)
            exit_code = agent.stop()
        finally:
            sampler.stop()
            agent.kill()
            app.stop()
    warmup = status["warmup"]["requests"]
    started, finished = status["phases"]["warming_up"], status["phases"]["ready"]
    return Footprint(
        startup_peak_kb=startup_peak,
        idle_kb=idle,
        drain_peak_kb=drain_peak,
        lifetime_peak_kb=lifetime_peak,
        warmup_requests_ok=warmup["ok"],
        warmup_seconds=_seconds_between(started, finished),
        app_ready_to_agent_ready_s=round(ready_latency(workdir, command, latency_runs), 3),
        exit_code=exit_code,
    )


def _seconds_between(start: str, end: str) -> float:
    def seconds(stamp: str) -> float:
        clock = stamp.split("T")[1].rstrip("Z")
        hours, minutes, secs = clock.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(secs)

    return round(seconds(end) - seconds(start), 3)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", help="lanes-helper executable to measure (default: python -m helper)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    command = [args.agent] if args.agent else list(HELPER_COMMAND)
    result = measure(command)
    if args.json:
        print(json.dumps(asdict(result)))
        return 0
    rows: list[tuple[str, Any]] = [
        ("RSS while starting + warming up (peak)", f"{result.startup_peak_kb / 1024:.1f} MiB"),
        ("RSS idle, ready", f"{result.idle_kb / 1024:.1f} MiB"),
        ("RSS during drain, 3 x /prestop (peak)", f"{result.drain_peak_kb / 1024:.1f} MiB"),
        ("RSS lifetime peak (VmHWM)", f"{result.lifetime_peak_kb / 1024:.1f} MiB"),
        ("warm-up", f"{result.warmup_requests_ok} requests in {result.warmup_seconds:.2f} s"),
        ("app ready -> agent /ready (no warm-up)", f"{result.app_ready_to_agent_ready_s * 1000:.0f} ms"),
        ("exit code after SIGTERM", result.exit_code),
    ]
    for label, value in rows:
        print(f"{label:<42} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
