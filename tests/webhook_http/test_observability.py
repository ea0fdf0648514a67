"""/healthz, /readyz, /metrics and the structured log lines."""

from __future__ import annotations

import io
import json
import logging
import re

import orjson
import pytest

from tests.webhook_http.bodies import pod, review, workload, workload_review
from tests.webhook_http.support import Pki, SecretVolume, ThreadServer, start_thread_server
from webhook.admission.app import Lifecycle
from webhook.admission.metrics import CacheStats, Metrics
from webhook.cli.jsonlog import JsonFormatter, configure_logging


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_requests_by_path_and_outcome(webhook: ThreadServer) -> None:
    before = webhook.client.get("/metrics").text
    webhook.client.post("/mutate", content=orjson.dumps(review(pod())))
    webhook.client.post("/mutate", content=orjson.dumps(review(pod(), operation="DELETE")))
    webhook.client.post("/mutate", content=b"{nope")
    webhook.client.post("/validate", content=orjson.dumps(workload_review(workload())))
    response = webhook.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def delta(name: str, labels: str = "") -> float:
        return sample(after, name, labels) - sample(before, name, labels)

    requests = "lanes_admission_requests_total"
    assert delta(requests, '{outcome="injected",path="/mutate"}') == 1
    assert delta(requests, '{outcome="ignored",path="/mutate"}') == 1
    assert delta(requests, '{outcome="bad_request",path="/mutate"}') == 1
    assert delta(requests, '{outcome="accepted",path="/validate"}') == 1
    assert delta("lanes_injections_total") == 1
    assert delta("lanes_admission_warnings_total", '{path="/mutate"}') >= 1
    assert delta("lanes_admission_duration_seconds_count", '{path="/mutate"}') == 3
    assert 'lanes_admission_duration_seconds_bucket{le="0.0001",path="/mutate"}' in after
    assert "lanes_admission_errors_total" in after
    assert "process_resident_memory_bytes" in after
    assert "python_gc_objects_collected_total" in after
    assert "lanes_tls_certificate_not_after_timestamp_seconds" in after


def test_skipped_pods_are_counted_by_reason(webhook: ThreadServer) -> None:
    metrics = webhook.metrics
    before = metrics.skips.labels("opted-out")._value.get()
    opted_out = pod(labels={"app": "web", "lanes.io/inject": "false"})
    response = webhook.client.post("/mutate", content=orjson.dumps(review(opted_out, uid="u-skip")))
    assert response.json()["response"] == {"uid": "u-skip", "allowed": True}
    assert metrics.skips.labels("opted-out")._value.get() == before + 1


def test_healthz_is_always_ok(webhook: ThreadServer) -> None:
    response = webhook.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_waits_for_the_owner_cache(pki: Pki, secret_volume: SecretVolume) -> None:
    synced = False
    lifecycle = Lifecycle({"owner cache": lambda: synced})
    server = start_thread_server(pki, secret_volume.cert, secret_volume.key, lifecycle=lifecycle)
    try:
        response = server.client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "not ready", "reason": "owner cache not ready"}
        # admission works regardless: a cold cache degrades resolution, it does not block pods
        assert server.client.post("/mutate", content=orjson.dumps(review(pod()))).status_code == 200
        synced = True
        assert server.client.get("/readyz").status_code == 200
        lifecycle.begin_drain()
        assert server.client.get("/readyz").json() == {"status": "not ready", "reason": "shutting down"}
    finally:
        server.stop()


def test_readyz_survives_a_broken_check(pki: Pki, secret_volume: SecretVolume) -> None:
    def broken() -> bool:
        raise RuntimeError("boom")

    server = start_thread_server(pki, secret_volume.cert, secret_volume.key, lifecycle=Lifecycle({"cache": broken}))
    try:
        response = server.client.get("/readyz")
        assert response.status_code == 503 and response.json()["reason"] == "cache check failed"
    finally:
        server.stop()


def test_owner_cache_state_is_exported() -> None:
    metrics = Metrics()
    metrics.watch_owner_cache(lambda: True, lambda: {"Deployment": CacheStats(objects=3, relists=1, watch_errors=2)})
    text = metrics.render().decode()
    assert sample(text, "lanes_owner_cache_synced") == 1
    assert sample(text, "lanes_owner_cache_objects", '{kind="Deployment"}') == 3
    assert sample(text, "lanes_owner_cache_relists_total", '{kind="Deployment"}') == 1
    assert sample(text, "lanes_owner_cache_watch_errors_total", '{kind="Deployment"}') == 2


def test_each_admission_logs_one_json_line(webhook: ThreadServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="lanes.admission"):
        body = review(pod(name="", generateName="web-7d9c-"), uid="u-log", dry_run=True)
        body["request"]["object"]["metadata"].pop("name")
        webhook.client.post("/mutate", content=orjson.dumps(body))
    records = [r for r in caplog.records if r.name == "lanes.admission" and r.msg == "admission"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "admission" and entry["level"] == "info" and entry["logger"] == "lanes.admission"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])
    assert entry["uid"] == "u-log"
    assert entry["namespace"] == "shop"
    assert entry["name"] == "web-7d9c-"
    assert entry["operation"] == "CREATE"
    assert entry["outcome"] == "injected"
    assert entry["dry_run"] is True
    assert isinstance(entry["duration_ms"], float)


def test_configure_logging_routes_uvicorn_through_json() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    flags = {name: getattr(logging, name) for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")}
    try:
        configure_logging("info", stream=stream)
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
        logging.getLogger("uvicorn.access").info("GET /healthz 200")  # access log is off by default
        try:
            raise ValueError("kaput")
        except ValueError:
            logging.getLogger("lanes.test").exception("failed", extra={"uid": "u", "fields": {"name": "n"}})
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        logging.getLogger("uvicorn.access").disabled = False
        for name, value in flags.items():
            setattr(logging, name, value)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["Started server process [42]", "failed"]
    assert lines[0]["logger"] == "uvicorn.error" and "color_message" not in lines[0]
    assert lines[1]["uid"] == "u" and lines[1]["name"] == "n" and "ValueError: kaput" in lines[1]["exc"]
