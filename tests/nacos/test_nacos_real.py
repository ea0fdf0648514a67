"""The agent and a real Nacos server, seen by a real Nacos consumer (the official Python SDK over gRPC).

Server: Nacos 2.3.2, JeecgBoot's third-party build from Maven Central, auth on, pushTaskDelay=10 ms (conftest.py).
Every number these tests print is a measurement, never an assertion on speed: the assertions are orderings
(never visible before ready + delay, gone before the drain ends, ...) that hold however slow the machine is.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devtools.nacos.server import NacosServer
from helper.registries.online import MAX_UPDATES
from helper.warmup import LINEAR, fraction
from tests.helper.procs import wait_for
from tests.nacos.conftest import find, registry_env


def _report(**numbers: Any) -> None:
    print("MEASURED " + " ".join(f"{key}={value}" for key, value in numbers.items()), file=sys.stderr)


def _phase_time(agent: Any, phase: str) -> float:
    status = agent.json("/status")
    stamp = status["phases"][phase]
    return time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + float("0" + stamp[19:-1])


def _prestop_in_thread(agent: Any, timeout: float) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def call() -> None:
        result["started"] = time.time()
        result["status"], result["body"] = agent.get("/prestop", timeout=timeout)
        result["returned"] = time.time()

    thread = threading.Thread(target=call)
    thread.start()
    return thread, result


def test_register_mode_is_invisible_until_ready_and_past_the_delay_and_carries_the_lane(
    nacos: NacosServer, start_consumer: Any, start_agent: Any, start_app: Any, pod_ip: str
) -> None:
    service = "reg-delay"
    consumer = start_consumer(service)
    app = start_app(listen_delay=2.0, wait=False)
    agent = start_agent(registry_env(nacos, service, pod_ip, app.port, delay=2.0, lane="gray"))
    agent.wait_ready(30)
    ready_at = _phase_time(agent, "ready")
    seen = consumer.wait(lambda e: e["event"] == "push" and find(e["hosts"], pod_ip, app.port), 30, "the instance")
    for push in consumer.pushes():
        if find(push["hosts"], pod_ip, app.port):
            assert push["t"] >= ready_at + 2.0, "visible before the pod was ready and past its register delay"
    instance = find(seen["hosts"], pod_ip, app.port)
    assert instance is not None
    assert instance["metadata"]["lane"] == "gray"
    assert instance["metadata"]["dubbo.tag"] == "gray"  # what Dubbo's tag router reads from the provider URL
    assert instance["enabled"] and instance["healthy"]
    _report(test="register_delay", ready_to_visible_s=round(seen["t"] - ready_at, 3), delay_s=2.0)


def test_the_weight_follows_the_warmup_curve_in_bounded_updates(
    nacos: NacosServer, start_consumer: Any, start_agent: Any, start_app: Any, pod_ip: str
) -> None:
    service = "ramp"
    window = 6.0
    consumer = start_consumer(service)
    app = start_app()
    agent = start_agent(registry_env(nacos, service, pod_ip, app.port, warmup=window))
    agent.wait_ready(30)
    first = consumer.wait(lambda e: e["event"] == "push" and find(e["hosts"], pod_ip, app.port), 30, "the instance")
    consumer.wait(
        lambda e: e["event"] == "push" and (find(e["hosts"], pod_ip, app.port) or {}).get("weight") == 1.0,
        window + 15, "the full weight",
    )  # fmt: skip
    registered = first["t"]
    seen = [(p["t"], find(p["hosts"], pod_ip, app.port)) for p in consumer.pushes()]
    weights = [(t, host["weight"]) for t, host in seen if host is not None]
    assert weights[0][1] == pytest.approx(fraction(0, window, LINEAR), abs=1e-6)  # starts at the floor
    assert [w for _, w in weights] == sorted(w for _, w in weights), "the weight never goes down"
    lag = 1.5  # push latency plus scheduling, generous; an ordering bound, not a speed assertion
    for t, weight in weights:
        elapsed = t - registered
        assert fraction(elapsed - lag, window, LINEAR) - 0.011 <= weight <= fraction(elapsed + lag, window, LINEAR)
    metrics = agent.get("/metrics")[1].decode()
    updates = sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
        if line.startswith("lanes_agent_registry_operations_total") and 'operation="weight"' in line
    )  # fmt: skip
    assert 1 <= updates <= MAX_UPDATES
    _report(test="ramp", window_s=window, weight_updates=int(updates), distinct_weights_seen=len(set(weights)))


def test_after_prestop_the_consumer_stops_choosing_the_pod_while_it_serves_until_the_drain_ends(
    nacos: NacosServer, start_consumer: Any, start_agent: Any, start_app: Any, pod_ip: str
) -> None:
    service = "prestop"
    drain = 4.0
    other = start_app()
    consumer = start_consumer(
        service, "--register-ip", "10.250.0.1", "--register-port", str(other.port), "--pick-every", "0.02", "--call"
    )
    app = start_app()
    agent = start_agent(registry_env(nacos, service, pod_ip, app.port, drain=drain))
    agent.wait_ready(30)
    mine = f"{pod_ip}:{app.port}"
    consumer.wait(lambda e: e["event"] == "pick" and e.get("host") == mine, 30, "the consumer to choose the pod")
    thread, result = _prestop_in_thread(agent, timeout=drain + 10)
    gone = consumer.wait(
        lambda e: e["event"] == "push" and e["t"] >= result.get("started", 1e18)
        and not find(e["hosts"], pod_ip, app.port),
        drain, "the push without the pod",
    )  # fmt: skip
    wait_for(lambda: app.accepting(), 1, what="the app still serving")
    thread.join(drain + 10)
    assert result["status"] == 200
    assert result["returned"] - result["started"] >= drain - 0.1  # the app served through the whole drain
    picks_after = [p for p in consumer.picks() if p["t"] > gone["t"] + 0.05 and p.get("host") == mine]
    assert picks_after == [], "the consumer chose the pod after the push that removed it"
    failed = [p for p in consumer.picks() if p.get("result") == "error"]
    assert failed == [], failed[:3]
    summary = result["body"].decode()
    assert '"registry":"nacos","result":"ok"' in summary
    _report(test="prestop", push_latency_s=round(gone["t"] - result["started"], 3), drain_s=drain,
            prestop_held_s=round(result["returned"] - result["started"], 3))  # fmt: skip


def test_manage_mode_takes_the_apps_own_registration_out_of_service_until_ready(
    nacos: NacosServer, start_consumer: Any, start_agent: Any, start_app: Any, pod_ip: str, tmp_path: Path
) -> None:
    service = "managed"
    watcher = start_consumer(service)
    can_serve = tmp_path / "can-serve"
    app = start_app(listen_file=str(can_serve), wait=False)  # starts serving when the test says so
    agent = start_agent(registry_env(nacos, service, pod_ip, app.port, query="&mode=manage", delay=1.0, drain=2.0))
    # the app registers itself over gRPC at once, long before it can serve (as Spring Cloud Alibaba does)
    self_registered = start_consumer(service, "--register-ip", pod_ip, "--register-port", str(app.port))
    registered_at = next(e["t"] for e in self_registered.snapshot() if e["event"] == "registered")
    wait_for(lambda: "took the app's own registration out of service" in agent.log_text(), 15, what="the hold")
    time.sleep(1.0)  # let the pushes of both changes land
    pushes = [p for p in watcher.pushes() if p["t"] >= registered_at]
    visible = [p for p in pushes if find(p["hosts"], pod_ip, app.port)]
    if visible:  # the consumer saw the early registration: it must have seen it go again
        held = next(p for p in pushes if p["t"] > visible[0]["t"] and not find(p["hosts"], pod_ip, app.port))
        exposed = held["t"] - visible[0]["t"]
    else:  # both changes reached the consumer in one push (pushTaskDelay merges them): never visible
        held, exposed = {"t": time.time()}, 0.0
    assert not agent.ready()
    can_serve.touch()
    agent.wait_ready(30)
    ready_at = _phase_time(agent, "ready")
    assert held["t"] < ready_at, "the app's early registration stayed in service until the pod was ready"
    back = watcher.wait(
        lambda e: e["event"] == "push" and e["t"] > ready_at and find(e["hosts"], pod_ip, app.port), 20, "enabled"
    )
    assert back["t"] >= ready_at + 1.0
    assert find(back["hosts"], pod_ip, app.port)["metadata"]["lane"] == "gray"
    thread, result = _prestop_in_thread(agent, timeout=12)
    out = watcher.wait(
        lambda e: e["event"] == "push" and e["t"] > result.get("started", 1e18)
        and not find(e["hosts"], pod_ip, app.port),
        2.0, "disabled at preStop",
    )  # fmt: skip
    thread.join(12)
    assert '"registry":"nacos","result":"ok"' in result["body"].decode()
    status = agent.json("/status")
    [nacos_status] = [r for r in status["registries"] if r["registry"] == "nacos"]
    assert nacos_status["state"] == "out_of_service" and nacos_status["mode"] == "manage"
    _report(test="manage", exposed_s=round(exposed, 3), registered_to_out_s=round(held["t"] - registered_at, 3),
            prestop_to_out_s=round(out["t"] - result["started"], 3))  # fmt: skip


def test_bad_credentials_give_one_clear_log_line_and_a_metric_and_the_pod_still_starts(
    nacos: NacosServer, start_agent: Any, start_app: Any, pod_ip: str
) -> None:
    app = start_app()
    agent = start_agent(registry_env(nacos, "badcreds", pod_ip, app.port, password="wrong"))
    agent.wait_ready(30)
    wait_for(
        lambda: 'operation="register",result="rejected"' in agent.get("/metrics")[1].decode(), 30,
        what="the rejected metric",
    )  # fmt: skip
    time.sleep(3)  # a few retries later: still one line
    lines = [line for line in agent.logs() if "rejected the credentials" in str(line.get("error", ""))]
    assert len(lines) == 1, lines
    assert lines[0]["level"] == "error" and "'nacos'" in lines[0]["error"] and "wrong" not in str(lines[0])
    assert agent.ready()
