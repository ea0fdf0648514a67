"""The agent's start-up with a real sample app: wait for the app, warm it up, then answer /ready."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from tests.helper.procs import Agent, SampleApp, cpu_ticks, run_helper, wait_for


def test_waits_for_a_slow_starting_app_then_becomes_ready(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp], tmp_path: Path
) -> None:
    go = tmp_path / "start-listening"
    app = start_app(listen_file=str(go), wait=False)  # the process runs, its port is not open yet
    agent = start_agent({"LANES_APP_PORT": str(app.port)})
    assert agent.get("/ready") == (503, b"not ready: waiting_for_app\n")
    assert agent.json("/status")["phase"] == "waiting_for_app"
    time.sleep(0.3)
    assert agent.get("/ready")[0] == 503
    go.touch()
    app.wait_listening()
    app_up = time.monotonic()
    ready_seen = agent.wait_ready(timeout=10)
    assert ready_seen - app_up < 2.0  # the wait polls with a short capped backoff
    status = agent.json("/status")
    assert status["phase"] == "ready" and status["app"]["serving_since"] is not None
    assert list(status["phases"]) == ["starting", "waiting_for_app", "ready"]


def test_readiness_path_is_waited_for_not_just_the_port(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp], tmp_path: Path
) -> None:
    ready_file = tmp_path / "app-ready"
    app = start_app(ready_file=str(ready_file))  # listening at once, /healthz 503 until the file exists
    agent = start_agent({"LANES_APP_PORT": str(app.port), "LANES_APP_READY_PATH": "/healthz"})
    time.sleep(0.3)
    assert app.accepting()
    assert agent.get("/ready") == (503, b"not ready: waiting_for_app\n")  # port open, app not serving yet
    ready_file.touch()
    agent.wait_ready(timeout=10)
    serving = next(line for line in agent.logs() if line["msg"] == "app is serving")
    assert serving["checks"] > 1  # it kept checking the path while the port was already open


def test_self_warmup_makes_the_app_fast_before_traffic(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]
) -> None:
    cold = {"cold_requests": 24, "cold_penalty": 0.06}
    warmed_app = start_app(**cold)
    unwarmed_app = start_app(**cold)
    agent = start_agent({"LANES_APP_PORT": str(warmed_app.port), "LANES_WARMUP_REQUESTS": "GET /api/items x24 c4"})
    agent.wait_ready(timeout=15)
    warmup = agent.json("/status")["warmup"]["requests"]
    assert warmup == {"planned": 24, "done": 24, "ok": 24, "errors": 0, "cut_short": False}
    stats = warmed_app.stats()
    assert stats["warmup_requests"] == 24 and stats["cold_left"] == 0  # users meet no cold request
    for _ in range(5):
        warmed_app.latency()
        unwarmed_app.latency()
    assert warmed_app.stats()["cold_left"] == 0
    assert unwarmed_app.stats()["cold_left"] == 24 - 5  # without warm-up, the first users paid the cold penalty


def test_warmup_errors_are_counted_never_fatal(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]
) -> None:
    app = start_app()
    agent = start_agent(
        {"LANES_APP_PORT": str(app.port), "LANES_WARMUP_REQUESTS": "/api/fail x3, /missing x2, /api/ok x2 c2"}
    )
    agent.wait_ready(timeout=10)
    assert agent.json("/status")["warmup"]["requests"] == {
        "planned": 7,
        "done": 7,
        "ok": 2,
        "errors": 5,
        "cut_short": False,
    }
    metrics = agent.get("/metrics")[1].decode()
    assert 'lanes_agent_warmup_requests_total{result="ok"} 2' in metrics
    assert 'lanes_agent_warmup_requests_total{result="error"} 5' in metrics


def test_warmup_is_bounded_in_time(start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]) -> None:
    app = start_app()
    agent = start_agent(
        {
            "LANES_APP_PORT": str(app.port),
            "LANES_WARMUP_REQUESTS": "/hang x4 c2",
            "LANES_WARMUP_REQUESTS_DEADLINE": "1",
        }
    )
    agent.wait_ready(timeout=8)
    requests = agent.json("/status")["warmup"]["requests"]
    assert requests["cut_short"] is True and requests["ok"] == 0 and requests["errors"] == 2  # the two in flight
    warning = next(line for line in agent.logs() if line["msg"].startswith("self warm-up cut short"))
    assert warning["level"] == "warning" and warning["not_sent"] == 2


def test_no_app_port_means_ready_at_once(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    agent.wait_ready(timeout=5)


def test_status_reports_the_warmup_weight(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent({"LANES_WARMUP": "100", "LANES_WARMUP_CURVE": "k=2,min=5%"})
    agent.wait_ready(timeout=5)
    warmup = agent.json("/status")["warmup"]
    assert warmup["window_s"] == 100 and warmup["curve"] == "k=2,min=5%" and warmup["k"] == 2
    assert warmup["min_percent"] == 5 and warmup["weight"] == 5  # (t/T)^2 is far below the floor this early
    metrics = agent.get("/metrics")[1].decode()
    assert "lanes_agent_warmup_weight 5" in metrics

    no_ramp = start_agent({"LANES_WARMUP": "0"})
    no_ramp.wait_ready(timeout=5)
    assert no_ramp.json("/status")["warmup"]["weight"] == 100


def test_metrics_are_valid_prometheus_text(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    agent.wait_ready(timeout=5)
    agent.get("/ready")
    (
        status,
        body,
    ) = agent.get("/metrics")
    assert status == 200
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? -?[0-9.e+]+$')
    names = set()
    for line in body.decode().splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$", line), line
            continue
        assert sample.match(line), line
        names.add(line.split("{")[0].split(" ")[0])
    for required in (
        "lanes_agent_phase",
        "lanes_agent_warmup_requests_total",
        "lanes_agent_prestop_calls_total",
        "lanes_agent_drain_seconds",
        "lanes_agent_notify_total",
        "process_start_time_seconds",
        "process_resident_memory_bytes",
        "lanes_agent_http_requests_total",
    ):
        assert required in names
    assert 'lanes_agent_phase{phase="ready"} 1' in body.decode()
    assert 'lanes_agent_http_requests_total{endpoint="/ready",code="200"}' in body.decode()


def test_logs_are_one_json_object_per_line(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    agent.wait_ready(timeout=5)
    assert agent.stop() == 0
    logs = agent.logs()
    assert logs and all({"ts", "level", "msg"} <= set(line) for line in logs)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", logs[0]["ts"])
    assert logs[0]["msg"] == "agent listening" and logs[0]["tls_loaded"] is False


def test_idle_agent_uses_no_cpu(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    agent.wait_ready(timeout=5)
    time.sleep(0.2)
    before = cpu_ticks(agent.process.pid)
    time.sleep(1.0)
    assert cpu_ticks(agent.process.pid) - before <= 1  # no timers, no polling: the loop sleeps in epoll


def test_sigterm_while_waiting_for_the_app_exits_0_promptly(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent({"LANES_APP_PORT": "1"})  # nothing will ever listen there
    wait_for(lambda: agent.json("/status")["phase"] == "waiting_for_app", 5)
    started = time.monotonic()
    agent.signal(signal.SIGTERM)
    assert agent.process.wait(5) == 0
    assert time.monotonic() - started < 3


def test_sigterm_when_ready_exits_0_promptly(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    agent.wait_ready(timeout=5)
    started = time.monotonic()
    agent.signal(signal.SIGINT)
    assert agent.process.wait(5) == 0
    assert time.monotonic() - started < 3
    assert agent.logs()[-1]["msg"] == "agent stopped"


def test_port_in_use_exits_1_with_a_log_line() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_helper(["agent"], {"LANES_AGENT_PORT": str(port)}, timeout=20)
    assert result.returncode == 1
    error = json.loads(result.stdout.splitlines()[-1])
    assert error["level"] == "error" and error["msg"] == "cannot listen" and error["port"] == port
