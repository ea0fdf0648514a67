"""The shape of every request the agent sends to Nacos, for the 2.x and the 3.x API, and its failure bounds.

A real agent process against tests/nacos/stand_in.py (a recording stand-in: no 3.x server can be had here, and
a real server cannot be made slow or dead on demand), plus a listener that never answers and a closed port.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from helper.registries.online import MAX_UPDATES
from tests.helper.procs import free_port, rss_kb, wait_for
from tests.helper.servers import SilentListener
from tests.nacos.stand_in import TOKEN, StandIn

BUDGET_KB = 20 * 1024


def _env(port: int, app_port: int, query: str = "", **extra: str) -> dict[str, str]:
    return {
        "LANES_APP_PORT": str(app_port),
        "LANES_POD_IP": "10.1.2.3",
        "LANES_POD_NAME": "orders-7d9f",
        "LANES_APP": "orders",
        "LANES_LANE": "gray",
        "LANES_DRAIN": "1",
        "LANES_REGISTRY": f"nacos://127.0.0.1:{port}?group=G1&namespace=dev{query}",
        "LANES_REGISTRY_USERNAME": "lanes",
        "LANES_REGISTRY_PASSWORD": "s3cret-pass",
        **extra,
    }


def _prestop(agent: Any, timeout: float = 15) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    status, body = agent.get("/prestop", timeout=timeout)
    assert status == 200
    return time.monotonic() - started, json.loads(body)


def _no_secret_in_urls(stand_in: StandIn) -> None:
    for request in stand_in.snapshot():
        assert "s3cret-pass" not in request.raw_path and TOKEN not in request.raw_path, request.raw_path
        if not request.path.endswith("/login"):
            assert request.headers.get("accesstoken") == TOKEN


def test_v2_register_mode_requests(start_agent: Any, start_app: Any) -> None:
    app = start_app()
    with StandIn() as nacos:
        agent = start_agent(_env(nacos.port, app.port, LANES_WARMUP="2"))
        agent.wait_ready(15)
        wait_for(lambda: len(nacos.calls("PUT", "/v1/ns/instance/beat")) >= 2, 15, what="two heartbeats")
        wait_for(lambda: any(r.query.get("weight") == "1.0" for r in nacos.calls("PATCH", "/v1/ns/instance")), 15,
                 what="the full weight")  # fmt: skip
        rss = rss_kb(agent.process.pid)
        _prestop(agent)
        time.sleep(1.5)
        [login] = nacos.calls("POST", "/nacos/v1/auth/login")
        assert login.body == "username=lanes&password=s3cret-pass" and login.query == {}
        [register] = nacos.calls("POST", "/nacos/v1/ns/instance")
        assert register.query | {"metadata": ""} == {
            "namespaceId": "dev", "serviceName": "G1@@orders", "clusterName": "DEFAULT", "ip": "10.1.2.3",
            "port": str(app.port), "weight": "0.1", "enabled": "true", "healthy": "true", "ephemeral": "true",
            "metadata": "",
        }  # fmt: skip
        metadata = json.loads(register.query["metadata"])
        assert metadata == {"lane": "gray", "lanes.pod": "orders-7d9f", "dubbo.tag": "gray"}
        patches = nacos.calls("PATCH", "/nacos/v1/ns/instance")
        assert all(p.query["enabled"] == "true" and p.query["serviceName"] == "G1@@orders" for p in patches)
        weights = [float(p.query["weight"]) for p in patches]
        assert weights == sorted(weights) and weights[-1] == 1.0 and len(patches) <= MAX_UPDATES + 1
        beats = nacos.calls("PUT", "/nacos/v1/ns/instance/beat")
        assert all(b.query["serviceName"] == "G1@@orders" and "beat" not in b.query for b in beats)
        [delete] = nacos.calls("DELETE", "/nacos/v1/ns/instance")
        assert delete.query["ephemeral"] == "true" and delete.query["ip"] == "10.1.2.3"
        deleted_at = nacos.requests.index(delete)
        after = [r for r in nacos.calls("PUT", "/instance/beat") if nacos.requests.index(r) > deleted_at]
        assert after == [], "a heartbeat after DELETE re-creates the instance on a 2.x server"
        _no_secret_in_urls(nacos)
    assert rss <= BUDGET_KB, f"agent RSS with a registry {rss} kB > {BUDGET_KB} kB"
    print(f"MEASURED agent_rss_with_nacos_kb={rss}")


def test_v3_admin_api_requests(start_agent: Any, start_app: Any) -> None:
    app = start_app()
    with StandIn() as nacos:
        agent = start_agent(_env(nacos.port, app.port, "&api=v3", LANES_WARMUP="1"))
        agent.wait_ready(15)
        wait_for(lambda: nacos.calls("PUT", "/v3/admin/ns/instance/partial"), 15, what="a weight update")
        _prestop(agent)
        [login] = nacos.calls("POST", "/nacos/v3/auth/user/login")
        assert login.body == "username=lanes&password=s3cret-pass"
        [register] = nacos.calls("POST", "/nacos/v3/admin/ns/instance")
        assert register.query["groupName"] == "G1" and register.query["serviceName"] == "orders"
        assert register.query["ephemeral"] == "false"  # the v3 admin API has no heartbeat: persistent instance
        for partial in nacos.calls("PUT", "/v3/admin/ns/instance/partial"):
            assert {"serviceName", "ip", "port", "cluster", "weight", "enabled", "metadata"} <= set(partial.query)
            assert partial.query["serviceName"] == "G1@@orders" and partial.query["enabled"] == "true"
        [delete] = nacos.calls("DELETE", "/nacos/v3/admin/ns/instance")
        assert delete.query["ephemeral"] == "false" and delete.query["groupName"] == "G1"
        assert not [r for r in nacos.snapshot() if "/v1/" in r.path or r.path.endswith("/beat")]
        _no_secret_in_urls(nacos)


def test_v2_manage_mode_disables_enables_and_never_deletes(start_agent: Any, start_app: Any, tmp_path: Any) -> None:
    gate = tmp_path / "serve"
    app = start_app(listen_file=str(gate), wait=False)
    host = {"ip": "10.1.2.3", "port": app.port, "weight": 2.5, "enabled": True, "healthy": True}
    with StandIn(hosts=[host]) as nacos:
        agent = start_agent(_env(nacos.port, app.port, "&mode=manage", LANES_REGISTER_DELAY="0.5"))
        wait_for(lambda: nacos.calls("PATCH", "/v1/ns/instance"), 15, what="the hold")
        held = nacos.calls("PATCH", "/v1/ns/instance")[0]
        assert held.query["enabled"] == "false" and held.query["weight"] == "2.5"
        assert not agent.ready()
        host["enabled"] = False  # what the server now lists: nothing (disabled instances are hidden)
        nacos.hosts = []
        gate.touch()
        agent.wait_ready(15)
        wait_for(lambda: any(p.query["enabled"] == "true" for p in nacos.calls("PATCH", "/v1/ns/instance")), 15,
                 what="enable")  # fmt: skip
        enable = next(p for p in nacos.calls("PATCH", "/v1/ns/instance") if p.query["enabled"] == "true")
        assert float(enable.query["weight"]) == 2.5  # no warm-up window: the app's own full weight at once
        assert json.loads(enable.query["metadata"])["lane"] == "gray"
        _prestop(agent)
        last = nacos.calls("PATCH", "/v1/ns/instance")[-1]
        assert last.query["enabled"] == "false"
        assert nacos.calls("DELETE", "/nacos/v1/ns/instance") == []
        assert nacos.calls("POST", "/nacos/v1/ns/instance") == []


@pytest.mark.parametrize("failure", ["dead", "silent"])
def test_a_dead_or_silent_nacos_neither_delays_readiness_nor_extends_the_drain(
    failure: str, start_agent: Any, start_app: Any
) -> None:
    app = start_app()
    silent = SilentListener() if failure == "silent" else None
    port = silent.port if silent is not None else free_port()  # nothing listens on a free port
    try:
        agent = start_agent(_env(port, app.port, LANES_DRAIN="2"))
        started = time.monotonic()
        agent.wait_ready(15)
        ready_after = time.monotonic() - started
        status = agent.json("/status")
        [nacos] = [r for r in status["registries"] if r["registry"] == "nacos"]
        assert nacos["state"] == "waiting"  # ready without the registry; registration retries in the background
        reason = "unreachable" if failure == "dead" else "timeout"
        wait_for(lambda: f'operation="register",result="{reason}"' in agent.get("/metrics")[1].decode(), 15,
                 what="the failed registration to be counted")  # fmt: skip
        held, summary = _prestop(agent)
        assert held < 2.0 + 0.5, f"the drain of 2 s took {held:.2f}s"
        [result] = [r for r in summary["phases"][1]["registries"] if r["registry"] == "nacos"]
        expected = "error" if failure == "dead" else "timeout"  # a refused connection fails fast; silence times out
        assert result["result"] == expected, result
        metrics = agent.get("/metrics")[1].decode()
        assert f'lanes_agent_deregister_total{{registry="nacos",result="{expected}"}} 1' in metrics
        assert any(line.get("msg") == "deregistered" and line.get("result") == expected for line in agent.logs())
        print(f"MEASURED failure={failure} ready_after_s={ready_after:.3f} prestop_held_s={held:.3f}")
    finally:
        if silent is not None:
            silent.close()


def test_a_silent_nacos_at_prestop_is_cut_off_by_the_drain(start_agent: Any, start_app: Any) -> None:
    """Registered first, then the server stops answering: deregistration is bounded by the drain, and counted."""
    app = start_app()
    with StandIn() as nacos:
        agent = start_agent(_env(nacos.port, app.port, LANES_DRAIN="1.5"))
        agent.wait_ready(15)
        wait_for(lambda: nacos.calls("POST", "/nacos/v1/ns/instance"), 15, what="registration")
        hang = threading.Event()
        original = nacos.answer

        def stalled(request: Any) -> tuple[int, str]:
            if request.method == "DELETE":
                hang.wait(10)
            return original(request)

        nacos.answer = stalled  # type: ignore[method-assign]
        try:
            held, summary = _prestop(agent)
        finally:
            hang.set()
        [result] = [r for r in summary["phases"][1]["registries"] if r["registry"] == "nacos"]
        assert result["result"] == "timeout"
        assert held < 1.5 + 0.5
        metrics = agent.get("/metrics")[1].decode()
        assert 'lanes_agent_deregister_total{registry="nacos",result="timeout"} 1' in metrics
