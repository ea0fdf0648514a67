"""Smoke tests of the benchmarks: every benchmark runs in its ``--quick`` mode and writes a well-formed result.

These never assert timings or throughput (the numbers of a seconds-long run on a shared machine mean nothing); they
check that each benchmark runs end to end, that its JSON has the expected shape with sane values, and the functional
facts a benchmark relies on (every server answers correct AdmissionReviews, the peers perform the same mutation as
Lanes, pods are really injected through the API server, the agent drains).

Tools: wrk and haproxy (``apt-get install -y wrk haproxy``), Go, and the ``bench`` extra (kopf, matplotlib). In CI
(``CI=true``) a missing tool fails the test; locally it is skipped with a loud reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import run as bench_run

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

NEEDS: dict[str, tuple[list[str], list[str]]] = {
    # benchmark: (commands, python modules)
    "admission": (["wrk", "go", "taskset"], ["kopf", "httpx", "jsonpatch"]),
    "apiserver": ([], ["httpx"]),
    "rollout": (["haproxy", "go"], ["matplotlib"]),
    "warmup_curves": (["haproxy", "go"], ["matplotlib"]),
    "footprint": ([], []),
}


def _require(name: str) -> None:
    commands, modules = NEEDS[name]
    missing = [c for c in commands if shutil.which(c) is None]
    missing += [f"python module {m}" for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    message = (f"benchmark {name!r} needs {', '.join(missing)}: apt-get install -y wrk haproxy; "
               f"pip install -e '.[bench]'; Go on PATH")
    if IN_CI:
        pytest.fail(f"missing in CI: {message}", pytrace=False)
    pytest.skip(f"!!! SKIPPING bench smoke test: {message} !!!")


def _run(name: str, results: Path) -> dict[str, Any]:
    _require(name)
    status = bench_run.main(["--quick", "--only", name, "--results", str(results)])
    doc = json.loads((results / f"{name}.json").read_text())
    result = doc["result"]
    if "error" in result and "tool missing" in result["error"] and not IN_CI:
        pytest.skip(f"!!! SKIPPING bench smoke test: {result['error']} !!!")
    assert "error" not in result, result.get("error")
    assert status == 0
    assert doc["quick"] is True and doc["name"] == name
    assert isinstance(doc["targets"], list) and doc["targets"]
    for row in doc["targets"]:
        assert row["status"] in ("met", "missed", "n/a")
    summary = (results / "summary.md").read_text()
    assert "| benchmark | target | measured | status |" in summary
    return dict(result)


def _latency(stats: dict[str, Any]) -> None:
    for key in ("p50", "p99"):
        assert stats[key] is None or stats[key] >= 0


@pytest.mark.timeout(1800)  # the first run builds the Go yardstick (controller-runtime) from the module proxy
def test_admission_smoke(tmp_path: Path) -> None:
    result = _run("admission", tmp_path)
    # Lanes and the floor each on three web stacks: the product's (raw ASGI /mutate, httptools + uvloop), FastAPI
    # routing, and uvicorn's pure-Python h11 on the asyncio loop
    assert set(result["servers"]) == {"lanes", "lanes_fastapi", "lanes_h11", "kopf", "go", "floor", "floor_fastapi",
                                      "floor_h11"}
    for name, server in result["servers"].items():
        assert server["rss_kb"] > 0 and server["rss_peak_kb"] >= server["rss_kb"]
        for body_name in ("small", "large"):
            body = server["bodies"][body_name]
            assert body["review_bytes"] > 0
            sat = body["saturation"]
            assert sat["requests"] >= 0 and sat["errors"] >= 0
            assert sat["error_detail"]["status"] == 0, f"{name} answered non-200 under load"
            assert sat["throughput_rps"] >= 0
            assert sat["cpu_us_per_request"] is None or sat["cpu_us_per_request"] >= 0
            _latency(sat["latency_ms"])
            assert len(body["fixed_rate"]) == 2
            for run in body["fixed_rate"]:
                assert run["ok"] >= 0 and run["errors"] >= 0 and run["rate_rps"] > 0
                _latency(run["latency_ms"])
            assert body["mutated"] is not name.startswith("floor")
    # the peers perform Lanes' mutation: kopf exactly, the Go port up to the status annotation's text
    for body_name in ("small", "large"):
        assert result["equivalence"]["kopf"][body_name]["identical"] is True
        assert result["equivalence"]["go"][body_name]["equal"] is True, result["equivalence"]["go"][body_name]
        for variant in ("lanes_fastapi", "lanes_h11"):  # another stack, the very same answers
            assert result["equivalence"][variant][body_name]["identical"] is True, variant
    assert "skipped" in result["instructions"], "a quick run must not start callgrind (minutes per server)"
    for body_name in ("small", "large"):
        row = result["summary"]["bodies"][body_name]
        assert set(row) >= {"lanes_rps", "lanes_over_kopf", "lanes_over_go", "lanes_over_floor",
                            "lanes_p99_ms_at_half_saturation"}


@pytest.mark.controlplane
def test_apiserver_smoke(tmp_path: Path) -> None:
    from devtools.controlplane import BinaryError, ensure_binaries

    try:
        ensure_binaries(("etcd", "kube-apiserver", "kube-controller-manager"))
    except BinaryError as exc:
        if IN_CI:
            pytest.fail(f"control plane unavailable in CI: {exc}", pytrace=False)
        pytest.skip(f"!!! SKIPPING bench smoke test: {exc} !!!")
    result = _run("apiserver", tmp_path)
    per_namespace = result["params"]["pods_per_namespace"]
    enabled, plain = result["client"]["enabled"], result["client"]["plain"]
    assert enabled["created"] == per_namespace and enabled["failed"] == 0
    assert plain["created"] == per_namespace and plain["failed"] == 0
    assert enabled["injected"] == per_namespace, "every pod in the enabled namespace went through Lanes"
    assert plain["injected"] == 0
    hist = result["apiserver_webhook_histogram"]
    assert hist["count"] >= per_namespace  # one call per pod, plus reinvocations
    assert hist["p50_ms"] is not None and hist["p50_ms"] >= 0
    assert hist["p99_ms"] is not None and hist["p99_ms"] >= hist["p50_ms"]
    assert result["lanes_server_histogram"]["count"] == hist["count"]
    for stats in (enabled, plain):
        assert stats["p50_ms"] >= 0 and stats["p99_ms"] >= stats["p50_ms"]


def test_rollout_smoke(tmp_path: Path) -> None:
    result = _run("rollout", tmp_path)
    for mode in ("plain", "lanes"):
        run = result["runs"][mode]
        assert run["mode"] == mode
        for window in ("total", "steady", "rollout"):
            stats = run[window]
            assert stats["requests"] > 0
            assert 0 <= stats["failed"] <= stats["requests"]
        assert run["failed_requests"] == run["total"]["failed"]
        assert run["rollout_duration_s"] > 0
        kinds = {event["kind"] for event in run["events"]}
        assert {"created", "ready", "terminating", "lb_add", "lb_remove", "sigterm", "exited"} <= kinds
    lanes_kinds = {event["kind"] for event in result["runs"]["lanes"]["events"]}
    assert {"registered", "prestop_returned"} <= lanes_kinds
    assert "prestop_returned" not in {event["kind"] for event in result["runs"]["plain"]["events"]}
    assert Path(result["plots"]["latency"]).stat().st_size > 0
    assert Path(result["plots"]["share"]).stat().st_size > 0


def test_warmup_curves_smoke(tmp_path: Path) -> None:
    result = _run("warmup_curves", tmp_path)
    assert {c["spec"] for c in result["curves"].values()} == {"linear", "k=2", "aggression=2"}
    for curve in result["curves"].values():
        assert curve["points"], "the new instance received traffic during its ramp"
        for point in curve["points"]:
            assert 0 <= point["measured"] <= 1 and 0 <= point["expected"] <= 1
        assert curve["rms_pp"] is None or curve["rms_pp"] >= 0
    assert result["failed_requests"] >= 0
    assert Path(result["plots"]["curves"]).stat().st_size > 0


def test_footprint_smoke(tmp_path: Path) -> None:
    result = _run("footprint", tmp_path)
    rss = result["rss_kb"]
    for key in ("warmup_max", "idle", "drain_max", "peak_vmhwm"):
        assert rss[key] is not None and rss[key] > 0
    assert result["idle_cpu"]["seconds"] >= 0
    assert result["probed_cpu"]["probes_answered"] > 0 and result["probed_cpu"]["seconds"] >= 0
    assert result["drain"]["prestop_status"] == 200
    assert result["status"]["planned"] == result["params"]["warmup_requests"]
    assert result["status"]["done"] == result["status"]["planned"]
