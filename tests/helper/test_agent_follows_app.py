"""Readiness as the kubelet and kube-proxy need it, with a real agent and a real app process.

- the pod stays *serving* while it drains (kube-proxy's fallback to serving+terminating endpoints depends on it);
- readiness follows the app after start-up: an app that crashes and restarts makes /ready 503 until it listens
  (and is warmed up) again;
- the agent reaches the app like the kubelet's probe: the probe's host and headers, else 127.0.0.1, ::1, then
  each pod IP.

"Pod IPs" here are other loopback addresses: on Linux the whole 127.0.0.0/8 is routed to the loopback interface and
bindable without root, so an app bound only to 127.0.0.2 is exactly as unreachable at 127.0.0.1 as an app bound
only to its pod IP is in a pod (and ``::`` with IPV6_V6ONLY is an IPv6-only app).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.helper.procs import Agent, SampleApp, free_port, http_request, run_helper, wait_for


def _prestop_in_background(agent: Agent) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []

    def call() -> None:
        status, body, _ = http_request(agent.port, "/prestop", timeout=30)
        results.append((status, json.loads(body)))

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: agent.json("/status")["phase"] == "draining", 5, what="the drain to start")
    return caller, results


# --- 1. serving while draining -------------------------------------------------------------------------------


def test_ready_stays_200_during_the_drain_then_503(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]
) -> None:
    app = start_app()
    agent = start_agent({"LANES_APP_PORT": str(app.port), "LANES_DRAIN": "2"})
    agent.wait_ready(timeout=10)
    caller, results = _prestop_in_background(agent)
    seen = set()
    while caller.is_alive():  # the whole drain: the endpoint must stay serving (the app still is)
        status, body = agent.get("/ready")
        seen.add((status, body))
        time.sleep(0.05)
    caller.join()
    assert seen <= {(200, b"ready (draining)\n"), (503, b"not ready: drained\n")}, seen
    assert (200, b"ready (draining)\n") in seen
    assert results[0][0] == 200
    assert agent.get("/ready") == (503, b"not ready: drained\n")  # the app gets SIGTERM now


def test_drain_before_ever_ready_stays_503(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent({"LANES_APP_PORT": "1", "LANES_DRAIN": "1"})  # the app never comes up
    caller, _ = _prestop_in_background(agent)
    assert agent.get("/ready") == (503, b"not ready: draining\n")
    caller.join()


def test_kubernetes_registry_says_who_deregisters(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent({"LANES_DRAIN": "0.2"})
    agent.wait_ready(timeout=5)
    status, body, _ = http_request(agent.port, "/prestop", timeout=10)
    (kubernetes,) = json.loads(body)["phases"][1]["registries"]
    assert status == 200 and kubernetes["result"] == "ok"
    assert "EndpointSlice controller" in kubernetes["detail"] and "serving" in kubernetes["detail"]


# --- 2. readiness follows the app -------------------------------------------------------------------------------


def _watch_ready(agent: Agent, app: SampleApp, until: Callable[[], bool]) -> list[tuple[float, bool, bool]]:
    """(time, app accepting, /ready 200) samples every 20 ms until ``until()``."""
    samples = []
    deadline = time.monotonic() + 20
    while not until():
        assert time.monotonic() < deadline, "timed out watching /ready"
        accepting = app.accepting()
        samples.append((time.monotonic(), accepting, agent.ready()))
        time.sleep(0.02)
    return samples


def test_ready_turns_503_when_the_app_dies_and_waits_for_it_again(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]
) -> None:
    app = start_app()
    agent = start_agent({"LANES_APP_PORT": str(app.port)})
    agent.wait_ready(timeout=10)
    app.crash()  # OOM kill, crash, liveness kill: the port closes, the kubelet restarts the container
    lost_at = time.monotonic()
    wait_for(lambda: not agent.ready(), 5, what="/ready to turn 503 after the app died")
    assert time.monotonic() - lost_at < 5
    assert agent.get("/ready") == (503, b"not ready: waiting_for_app\n")

    app.restart(listen_delay="1.5", wait=False)  # the new process takes a while to listen (cold start)
    samples = _watch_ready(agent, app, until=agent.ready)
    ready_while_not_listening = [s for s in samples if s[2] and not s[1]]
    assert not ready_while_not_listening
    assert any(not s[1] for s in samples)  # the test did watch the gap
    status = agent.json("/status")
    assert status["phase"] == "ready" and status["app"]["lost"] == 1
    lost = next(line for line in agent.logs() if line["msg"] == "app lost")
    assert lost["level"] == "warning" and lost["failures"] >= 2
    assert 'lanes_agent_app_lost_total 1' in agent.get("/metrics")[1].decode()


def test_the_app_containers_probe_fails_at_once_when_the_app_is_gone(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]
) -> None:
    """/ready/app (the probe the webhook gives an app container without one) checks the app when asked: right
    after a crash it answers 503 although /ready, which waits for two failed checks 2 s apart, is still 200."""
    waiting = start_agent({"LANES_APP_PORT": "1"})  # no app ever: the agent's own state decides first
    status, body = waiting.get("/ready/app")
    assert status == 503 and body in (b"not ready: starting\n", b"not ready: waiting_for_app\n"), body
    app = start_app()
    agent = start_agent({"LANES_APP_PORT": str(app.port)})
    agent.wait_ready(timeout=10)
    assert agent.get("/ready/app") == (200, b"ready\n")
    app.crash()
    status, body = agent.get("/ready/app")
    assert status == 503 and body.startswith(b"not ready: the app does not answer: "), body
    app.restart(listen_delay="1.5", wait=False)
    samples = []
    deadline = time.monotonic() + 20
    while agent.get("/ready/app")[0] != 200:
        assert time.monotonic() < deadline, "timed out waiting for /ready/app after the restart"
        samples.append(app.accepting())
        time.sleep(0.02)
    assert app.accepting() and not all(samples), "the check was 200 before the restarted app listened"
    assert "lanes_agent_app_check_failures_total " in agent.get("/metrics")[1].decode()
    assert agent.get("/ready/app", method="POST")[0] == 405


def test_restarted_app_is_warmed_up_again_before_ready(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]
) -> None:
    app = start_app(cold_requests=8, cold_penalty=0.01)
    agent = start_agent({"LANES_APP_PORT": str(app.port), "LANES_WARMUP_REQUESTS": "GET /api/items x8 c2"})
    agent.wait_ready(timeout=10)
    app.crash()
    wait_for(lambda: not agent.ready(), 5, what="/ready to turn 503")
    app.restart()
    agent.wait_ready(timeout=10)
    assert app.stats()["warmup_requests"] == 8  # the new process got its own warm-up
    assert app.stats()["cold_left"] == 0


def test_readiness_path_failing_after_startup_turns_ready_503(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp], tmp_path: Any
) -> None:
    ready_file = tmp_path / "app-ready"
    ready_file.touch()
    app = start_app(ready_file=str(ready_file))
    agent = start_agent({"LANES_APP_PORT": str(app.port), "LANES_APP_READY_PATH": "/healthz"})
    agent.wait_ready(timeout=10)
    ready_file.unlink()  # the app says it cannot serve (its own readiness failing)
    wait_for(lambda: not agent.ready(), 6, what="/ready to follow the app's readiness path")
    ready_file.touch()
    agent.wait_ready(timeout=10)


def test_app_going_away_during_the_drain_is_expected(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]
) -> None:
    app = start_app()
    agent = start_agent({"LANES_APP_PORT": str(app.port), "LANES_DRAIN": "4"})
    agent.wait_ready(timeout=10)
    caller, _ = _prestop_in_background(agent)
    app.crash()
    time.sleep(3.0)  # longer than the agent takes to notice a lost app outside a drain
    assert agent.json("/status")["phase"] == "draining"
    caller.join()
    assert not any(line["msg"] == "app lost" for line in agent.logs())


# --- 3. reaching the app like the kubelet ------------------------------------------------------------------------


def test_app_bound_only_to_the_pod_ip_becomes_ready(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]
) -> None:
    pod_ip = "127.0.0.2"
    app = start_app(bind=pod_ip)
    agent = start_agent(
        {
            "LANES_APP_PORT": str(app.port),
            "LANES_APP_READY_PATH": "/healthz",
            "LANES_POD_IP": pod_ip,
            "LANES_POD_IPS": f"{pod_ip},fd00::2",
        }
    )
    agent.wait_ready(timeout=10)
    assert agent.json("/status")["app"]["address"] == pod_ip


def test_pod_ip_app_gets_the_kubelets_host_header(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]
) -> None:
    pod_ip, port = "127.0.0.2", free_port()
    app = start_app(bind=pod_ip, port=port, require_headers=[f"Host={pod_ip}:{port}"])
    agent = start_agent(
        {
            "LANES_APP_PORT": str(app.port),
            "LANES_APP_READY_PATH": "/healthz",
            "LANES_POD_IP": pod_ip,
            "LANES_POD_IPS": pod_ip,
            "LANES_WARMUP_REQUESTS": "/api/items x3",
        }
    )
    agent.wait_ready(timeout=10)
    assert agent.json("/status")["warmup"]["requests"]["ok"] == 3


def test_ipv6_only_app_becomes_ready(start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]) -> None:
    app = start_app(bind="::", v6only=True)
    agent = start_agent({"LANES_APP_PORT": str(app.port), "LANES_POD_IPS": "127.0.0.2"})
    agent.wait_ready(timeout=10)
    assert agent.json("/status")["app"]["address"] == "::1"


def test_probe_host_is_dialled(start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]) -> None:
    host, port = "127.0.0.3", free_port()
    app = start_app(bind=host, port=port, require_headers=[f"Host={host}:{port}"])
    agent = start_agent(
        {
            "LANES_APP_PORT": str(app.port),
            "LANES_APP_READY_PATH": "/healthz",
            "LANES_APP_READY_HOST": host,
            "LANES_POD_IPS": "127.0.0.2",
        }
    )
    agent.wait_ready(timeout=10)
    assert agent.json("/status")["app"]["address"] == host


def test_probe_headers_are_sent_and_host_overrides(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]
) -> None:
    app = start_app(
        require_headers=["Cookie=shop_session-id=x-readiness-probe", "Host=shop.example", "Accept=application/json"]
    )
    headers = [  # Online Boutique's frontend probe sends a Cookie; Host overrides, Accept replaces the default
        {"name": "Cookie", "value": "shop_session-id=x-readiness-probe"},
        {"name": "Host", "value": "shop.example"},
        {"name": "Accept", "value": "application/json"},
    ]
    agent = start_agent(
        {
            "LANES_APP_PORT": str(app.port),
            "LANES_APP_READY_PATH": "/healthz",
            "LANES_APP_READY_HEADERS": json.dumps(headers),
        }
    )
    agent.wait_ready(timeout=10)


def test_malformed_probe_headers_are_a_config_error() -> None:
    for raw in ("not json", '{"name": "a"}', '[{"name": "Bad Name", "value": "x"}]', '[{"name": "X", "value": 1}]'):
        result = run_helper(["agent"], {"LANES_APP_PORT": "8080", "LANES_APP_READY_HEADERS": raw}, timeout=20)
        assert result.returncode == 2, (raw, result.stdout, result.stderr)
        assert "LANES_APP_READY_HEADERS" in result.stderr and "Traceback" not in result.stderr


def test_malformed_pod_ips_are_a_config_error() -> None:
    result = run_helper(["agent"], {"LANES_APP_PORT": "8080", "LANES_POD_IPS": "10.0.0.1,not-an-ip"}, timeout=20)
    assert result.returncode == 2 and "LANES_POD_IPS" in result.stderr and "not-an-ip" in result.stderr


# --- a container restart runs the preStop hook too (liveness, startup probe) -------------------------------------


def test_container_restarted_after_its_prestop_makes_the_agent_start_over(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]
) -> None:
    """The kubelet runs a container's preStop hook before killing it for a failed liveness probe, then starts it
    again: the pod was not deleted, so once the new process answers the pod must become ready again."""
    app = start_app()
    agent = start_agent({"LANES_APP_PORT": str(app.port), "LANES_DRAIN": "0.5"})
    agent.wait_ready(timeout=10)
    status, _, _ = http_request(agent.port, "/prestop", timeout=10)  # the kubelet's hook, before the kill
    assert status == 200 and agent.get("/ready") == (503, b"not ready: drained\n")
    app.crash()  # killed after the hook
    time.sleep(1.5)
    assert agent.get("/ready")[0] == 503  # gone: nothing to be ready for
    app.restart(listen_delay="0.5", wait=False)  # the kubelet starts the container again
    samples = _watch_ready(agent, app, until=agent.ready)
    assert not [s for s in samples if s[2] and not s[1]]  # never ready before the new process listened
    status_doc = agent.json("/status")
    assert status_doc["phase"] == "ready" and status_doc["app"]["replaced_after_drain"] == 1
    # the next preStop (the pod's deletion this time) runs a whole new drain
    started = time.monotonic()
    status, body, _ = http_request(agent.port, "/prestop", timeout=10)
    assert status == 200 and json.loads(body)["joined"] is False and time.monotonic() - started >= 0.45


def test_deleted_pods_app_does_not_come_back_so_the_agent_stays_drained(
    start_agent: Callable[..., Agent], start_app: Callable[..., SampleApp]
) -> None:
    app = start_app()
    agent = start_agent({"LANES_APP_PORT": str(app.port), "LANES_DRAIN": "0.3"})
    agent.wait_ready(timeout=10)
    http_request(agent.port, "/prestop", timeout=10)
    app.stop()  # SIGTERM after the hook; a deleted pod's container is not started again
    time.sleep(2.0)
    assert agent.get("/ready") == (503, b"not ready: drained\n")
    assert agent.json("/status")["app"]["replaced_after_drain"] == 0
    assert agent.stop() == 0  # the kubelet stops the sidecar last
