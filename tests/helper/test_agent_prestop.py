"""/prestop with a real agent: the offline sequence's order and timing, the broadcast, shared drains, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helper.procs import REPO, Agent, http_request, wait_for
from tests.helper.servers import Receiver, SilentListener, closed_port

DRAIN = 1.0
SLACK = 1.0
"""Generous tolerance on drain timing: behaviour, not performance."""


def call_prestop(agent: Agent, results: list[Any], started: list[float] | None = None) -> None:
    """One kubelet preStop hook: GET /prestop and wait for the answer (recorded with its monotonic times)."""
    begin = time.monotonic()
    if started is not None:
        started.append(begin)
    status, body, _ = http_request(agent.port, "/prestop", timeout=30)
    results.append((status, json.loads(body), begin, time.monotonic()))


def identity_env(notify: str, drain: float = DRAIN) -> dict[str, str]:
    return {
        "LANES_DRAIN": str(drain),
        "LANES_OFFLINE_NOTIFY": notify,
        "LANES_POD_NAME": "cart-7d9f-abcde",
        "LANES_POD_NAMESPACE": "shop",
        "LANES_POD_IP": "10.1.2.3",
        "LANES_LANE": "gray",
        "LANES_APP": "cart",
    }


def test_offline_sequence_order_timing_and_broadcast(start_agent: Callable[..., Agent]) -> None:
    agent_box: list[Agent] = []
    # While handling the broadcast, the receiver asks the agent whether it is still ready: it must be (the pod
    # stays serving through the drain; the EndpointSlice controller already marked it not ready).
    with Receiver(on_request=lambda: agent_box[0].get("/ready")[0]) as receiver:
        agent = start_agent(identity_env(receiver.url))
        agent_box.append(agent)
        agent.wait_ready(timeout=5)
        results: list[Any] = []
        call_prestop(agent, results)
    status, summary, begin, end = results[0]
    assert status == 200
    assert DRAIN - 0.05 <= end - begin <= DRAIN + SLACK

    phases = [phase["phase"] for phase in summary["phases"]]
    assert phases == ["draining", "deregistered", "broadcast", "drained"]
    offsets = [phase["t"] for phase in summary["phases"]]
    assert offsets == sorted(offsets) and offsets[-1] >= DRAIN - 0.05
    assert summary["phases"][1]["registries"][0]["registry"] == "kubernetes"
    assert summary["phases"][1]["registries"][0]["result"] == "ok"
    (notified,) = summary["notify"]
    assert notified.pop("ms") >= 0
    assert notified == {"url": receiver.url, "result": "ok", "status": 200, "attempts": 1, "error": None}
    assert summary["joined"] is False and summary["call"] == 1

    assert len(receiver.received) == 1
    broadcast = receiver.received[0]
    assert broadcast.method == "POST" and broadcast.path == "/offline"
    assert broadcast.headers["Content-Type"] == "application/json"
    assert broadcast.extra == 200  # draining, deregistered, and still serving when the broadcast went out
    payload = broadcast.json()
    assert {key: payload[key] for key in ("pod", "namespace", "ip", "lane", "app", "reason", "drain_seconds")} == {
        "pod": "cart-7d9f-abcde",
        "namespace": "shop",
        "ip": "10.1.2.3",
        "lane": "gray",
        "app": "cart",
        "reason": "prestop",
        "drain_seconds": DRAIN,
    }
    assert payload["event"] == "going-offline"
    assert broadcast.at - begin < DRAIN  # sent at the start of the drain, not after it


def test_ready_and_health_hold_during_the_drain(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent({"LANES_DRAIN": "2.5"})  # long enough to look inside it even on a loaded machine
    agent.wait_ready(timeout=5)
    results: list[Any] = []
    caller = threading.Thread(target=call_prestop, args=(agent, results))
    caller.start()
    wait_for(lambda: agent.json("/status")["phase"] == "draining", 2)
    assert agent.get("/ready") == (200, b"ready (draining)\n")
    assert agent.get("/healthz") == (200, b"ok\n")
    assert agent.json("/status")["ready"] is True
    caller.join()
    assert agent.get("/ready") == (503, b"not ready: drained\n")
    metrics = agent.get("/metrics")[1].decode()
    assert "lanes_agent_prestop_calls_total 1" in metrics
    assert 'lanes_agent_phase{phase="drained"} 1' in metrics
    assert "lanes_agent_drain_seconds 2.5" in metrics


def test_unreachable_and_slow_receivers_do_not_extend_the_drain(start_agent: Callable[..., Agent]) -> None:
    refused = f"http://127.0.0.1:{closed_port()}/offline"
    with Receiver(delay=10) as slow, SilentListener() as silent:
        hung = f"http://127.0.0.1:{silent.port}/offline"
        unresolvable = "http://no-such-receiver.invalid/offline"
        # The drain is far longer than three refused attempts need (~0.6 s of backoff): a loaded CI machine once
        # stretched them past a 2 s drain. The slow and hung receivers still outlast it.
        agent = start_agent(identity_env(",".join([refused, slow.url, hung, unresolvable]), drain=5))
        agent.wait_ready(timeout=5)
        results: list[Any] = []
        call_prestop(agent, results)
    _, summary, begin, end = results[0]
    assert 5 - 0.05 <= end - begin <= 5 + SLACK
    outcome = {item["url"]: item for item in summary["notify"]}
    assert outcome[refused]["result"] == "failed" and outcome[refused]["attempts"] == 3
    assert outcome[unresolvable]["result"] == "failed" and "cannot resolve" in outcome[unresolvable]["error"]
    assert outcome[slow.url]["result"] == "cut_off"
    assert outcome[hung]["result"] == "cut_off"
    metrics = agent.get("/metrics")[1].decode()
    assert 'lanes_agent_notify_total{result="failed"} 2' in metrics
    assert 'lanes_agent_notify_total{result="cut_off"} 2' in metrics


def test_receiver_errors_are_retried_client_errors_are_not(start_agent: Callable[..., Agent]) -> None:
    with Receiver(status=503) as flaky, Receiver(status=404) as wrong:
        agent = start_agent(identity_env(f"{flaky.url},{wrong.url}", drain=2))
        agent.wait_ready(timeout=5)
        results: list[Any] = []
        call_prestop(agent, results)
    outcome = {item["url"]: item for item in results[0][1]["notify"]}
    assert outcome[flaky.url]["result"] == "failed" and outcome[flaky.url]["attempts"] == 3
    assert outcome[flaky.url]["error"] == "HTTP 503"
    assert outcome[wrong.url]["result"] == "failed" and outcome[wrong.url]["attempts"] == 1
    assert len(flaky.received) == 3 and len(wrong.received) == 1


def test_concurrent_calls_share_one_drain(start_agent: Callable[..., Agent]) -> None:
    with Receiver() as receiver:
        agent = start_agent(identity_env(receiver.url, drain=2))
        agent.wait_ready(timeout=5)
        results: list[Any] = []
        callers = []
        for _ in range(3):  # one preStop hook per app container, arriving a little apart
            caller = threading.Thread(target=call_prestop, args=(agent, results))
            caller.start()
            callers.append(caller)
            time.sleep(0.2)
        for caller in callers:
            caller.join()
    assert len(results) == 3 and all(status == 200 for status, *_ in results)
    first_begin = min(begin for *_, begin, _ in results)
    ends = [end for *_, end in results]
    assert max(ends) - min(ends) < 0.5  # all released together, at the end of the one drain
    assert 2 - 0.05 <= max(ends) - first_begin <= 2 + SLACK
    summaries = [summary for _, summary, _, _ in results]
    assert sorted(summary["joined"] for summary in summaries) == [False, True, True]
    assert len({summary["started_at"] for summary in summaries}) == 1
    assert len(receiver.received) == 1  # one broadcast, not one per container
    assert agent.json("/status")["prestop_calls"] == 3


def test_call_after_completion_returns_at_once(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent({"LANES_DRAIN": "0.5"})
    agent.wait_ready(timeout=5)
    first: list[Any] = []
    call_prestop(agent, first)
    again: list[Any] = []
    call_prestop(agent, again)
    _, summary, begin, end = again[0]
    assert end - begin < 0.5
    assert summary["joined"] is True and summary["started_at"] == first[0][1]["started_at"]


def test_prestop_during_startup_drains_and_never_becomes_ready(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent({"LANES_APP_PORT": "1", "LANES_DRAIN": "0.5"})  # the app never comes up
    results: list[Any] = []
    call_prestop(agent, results)
    assert results[0][0] == 200
    status = agent.json("/status")
    assert status["phase"] == "drained" and "ready" not in status["phases"]


def test_sigterm_during_a_drain_finishes_it_then_exits_0(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent({"LANES_DRAIN": "1.5"})
    agent.wait_ready(timeout=5)
    results: list[Any] = []
    caller = threading.Thread(target=call_prestop, args=(agent, results))
    caller.start()
    wait_for(lambda: agent.json("/status")["phase"] == "draining", 2)
    term_sent = time.monotonic()
    agent.signal(signal.SIGTERM)
    assert agent.process.wait(10) == 0
    exited = time.monotonic()
    caller.join(5)
    status, summary, begin, _ = results[0]
    assert status == 200 and summary["phases"][-1]["phase"] == "drained"  # the caller got its answer
    assert exited - begin >= 1.5 - 0.05  # the drain was not cut short
    assert exited - term_sent < 1.5 + SLACK
    messages = [line["msg"] for line in agent.logs()]
    assert messages.index("signal received") < messages.index("offline sequence complete")
    assert messages[-1] == "agent stopped"


@pytest.mark.parametrize("method", ["POST"])
def test_prestop_accepts_post(start_agent: Callable[..., Agent], method: str) -> None:
    agent = start_agent({"LANES_DRAIN": "0"})
    status, body, _ = http_request(agent.port, "/prestop", method=method, body=b"{}")
    assert status == 200 and json.loads(body)["phases"][-1]["phase"] == "drained"


PLUGIN = """
import asyncio


class Slow:
    name = "slowreg"

    async def deregister(self):
        await asyncio.sleep(3600)
        return "never"


class Failing:
    name = "failreg"

    async def deregister(self):
        raise ConnectionError("registry unreachable")


def slow(config):
    return Slow()


def failing(config):
    return Failing()
"""


def test_pluggable_registries_are_bounded_and_failures_reported(
    start_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    """Third-party registries come from entry points (group lanes.registries); a hung or failing one cannot
    hold the drain hostage, and its failure is reported, not fatal."""
    plugins = tmp_path / "plugins"
    (plugins / "fake_registries-1.0.dist-info").mkdir(parents=True)
    (plugins / "fake_registries-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-registries\nVersion: 1.0\n"
    )
    (plugins / "fake_registries-1.0.dist-info" / "entry_points.txt").write_text(
        "[lanes.registries]\nslowreg = fake_registries:slow\nfailreg = fake_registries:failing\n"
    )
    (plugins / "fake_registries.py").write_text(PLUGIN)
    agent = start_agent(
        {
            "LANES_REGISTRIES": "kubernetes,slowreg,failreg",
            "LANES_DRAIN": "1",
            "PYTHONPATH": f"{REPO}{os.pathsep}{plugins}",
        }
    )
    results: list[Any] = []
    call_prestop(agent, results)
    _, summary, begin, end = results[0]
    assert end - begin <= 1 + SLACK
    registries = {item["registry"]: item for item in summary["phases"][1]["registries"]}
    assert registries["kubernetes"]["result"] == "ok"
    assert registries["slowreg"]["result"] == "timeout"
    assert registries["failreg"]["result"] == "error" and "registry unreachable" in registries["failreg"]["detail"]
    metrics = agent.get("/metrics")[1].decode()
    assert 'lanes_agent_deregister_total{registry="slowreg",result="timeout"} 1' in metrics


def test_https_broadcast_loads_tls_only_when_going_offline(
    start_agent: Callable[..., Agent], ca_file: Path, server_tls: ssl.SSLContext
) -> None:
    """An https receiver costs OpenSSL's memory only during the drain: the agent starts without ``ssl`` and loads
    it for the broadcast, with certificates verified (here against a test CA through SSL_CERT_FILE)."""
    with Receiver(tls=server_tls) as receiver:
        agent = start_agent({**identity_env(receiver.url), "SSL_CERT_FILE": str(ca_file)})
        agent.wait_ready(timeout=5)
        assert agent.logs()[0]["tls_loaded"] is False
        results: list[Any] = []
        call_prestop(agent, results)
    (notified,) = results[0][1]["notify"]
    assert notified["result"] == "ok" and notified["status"] == 200, notified
    assert len(receiver.received) == 1 and receiver.received[0].json()["pod"] == "cart-7d9f-abcde"
