"""Smoke run of bench/scale.py (50 pods): the JSON has every number the full run reports, and they are sane.

Checks facts, never timings: every pod was created and gated, each gate has a latency sample, the controller sent
exactly one status PATCH per pod (its own requests, from the audit log), the API server's per-pod counts are
there, and both restarts were survived (a new pod was gated after each). Needs the control-plane binaries; in CI
(``CI=true``) their absence fails the test, locally it is skipped loudly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.mark.controlplane
def test_scale_smoke(tmp_path: Path) -> None:
    from devtools.controlplane import BinaryError, ensure_binaries

    try:
        ensure_binaries(("etcd", "kube-apiserver", "kwok"))
    except BinaryError as exc:
        if IN_CI:
            pytest.fail(f"control plane unavailable in CI: {exc}", pytrace=False)
        pytest.skip(f"!!! SKIPPING bench smoke test: {exc} !!!")
    from bench import scale

    result = scale.run(quick=True, work=tmp_path)
    (step,) = result["steps"]
    assert step["pods"] == 50 and step["created"] == 50 and step["create_failures"] == []
    latency = step["gate_latency_ms"]
    assert latency["samples"] == 50, "every pod's ContainersReady write and gate PATCH were both in the audit log"
    # the API server's own times: the gate PATCH always lands after the ContainersReady write it answers
    assert 0 < latency["min"] <= latency["p50"] <= latency["p99"] <= latency["max"]
    assert step["gate_latency_ms_as_watched"]["samples"] == 50
    assert step["controller_requests"]["patch pods/status"] == 50
    assert step["status_patches_per_pod"] == 1.0
    assert step["controller_rss_kb"] > 0 and step["controller_cpu_s"] > 0
    per_pod = result["apiserver_pod_requests_per_pod_all_clients"]
    assert per_pod["POST pods"] >= 1.0 and per_pod["PATCH pods/status"] >= 1.0  # creates + kwok's and Lanes' PATCHes
    restarts = result["restarts"]
    for key in ("controller_restart_to_leader_s", "controller_restart_to_new_pod_gated_s",
                "apiserver_restart_to_new_pod_gated_s"):
        assert restarts[key] is not None and restarts[key] >= 0, key
    rows = scale.target_rows(result)
    assert [met for _, _, met in rows][2] is True  # one status PATCH per pod start


@pytest.mark.controlplane
def test_scale_webhook_smoke(tmp_path: Path) -> None:
    """The owner-cache bench: both phases measured on one process, the large cluster fully cached."""
    from devtools.controlplane import BinaryError, ensure_binaries

    try:
        ensure_binaries(("etcd", "kube-apiserver"))
    except BinaryError as exc:
        if IN_CI:
            pytest.fail(f"control plane unavailable in CI: {exc}", pytrace=False)
        pytest.skip(f"!!! SKIPPING bench smoke test: {exc} !!!")
    from bench import scale_webhook

    result = scale_webhook.run(quick=True, work=tmp_path)
    small, large = result["small"], result["large"]
    assert small["cache_objects"]["ReplicaSet"] == 1 and small["cache_objects"]["Deployment"] == 1
    assert large["cache_objects"]["ReplicaSet"] == 41 and large["cache_objects"]["Deployment"] == 11
    for phase in (small, large):
        assert phase["requests"] == 498 and 0 < phase["p50_ms"] <= phase["p99_ms"] and phase["rss_kb"] > 0
    assert len(scale_webhook.target_rows(result)) == 2
