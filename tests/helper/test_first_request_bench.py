"""Smoke test of bench/first_request.py in its ``--quick`` mode: it runs end to end (the real prewarm, the real
agent, the app, in a private network + mount namespace) and shows the facts its comparison rests on. No timings
are asserted: the benchmark measures, this checks it measures the right thing.

Needs root, ``unshare``/``ip`` (util-linux, iproute2) and matplotlib (the ``bench`` extra): in CI (``CI=true``)
their absence fails the test; locally it is skipped with a loud reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from bench import run as bench_run

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_first_request_bench_shows_what_each_warm_up_warms(tmp_path: Path) -> None:
    namespaces = os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("ip") is not None
    if not namespaces or importlib.util.find_spec("matplotlib") is None:
        message = ("bench/first_request.py needs root, unshare and ip for its private network namespace, and"
                   " matplotlib (pip install -e '.[bench]')")
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(f"!!! SKIPPING: {message} !!!")
    assert bench_run.main(["--quick", "--only", "first_request", "--results", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "first_request.json").read_text())
    result = doc["result"]
    assert "error" not in result, result.get("error")
    cases = result["summary"]["cases"]
    assert set(cases) == {"none", "prewarm", "selfwarm", "both"} and all(c["trials"] >= 1 for c in cases.values())
    by_case = {record["case"]: record for record in result["records"]}
    # neither: the first request opens the pool: DNS lookup (a cache miss), TCP, TLS
    assert set(by_case["none"]["opened"]) == {"tls_context", "dns", "connect", "tls_handshake"}
    assert by_case["none"]["dns_cache_hit"] is False
    # pre-warm ran in another process: the app still opens its own connection, but the DNS cache was warm
    assert set(by_case["prewarm"]["opened"]) == {"tls_context", "dns", "connect", "tls_handshake"}
    assert by_case["prewarm"]["dns_cache_hit"] is True and by_case["prewarm"]["prewarm_s"] > 0
    # self warm-up made the app open its own pool before the first user request
    assert by_case["selfwarm"]["opened"] == {} and by_case["both"]["opened"] == {}
    assert (tmp_path / "first_request.png").stat().st_size > 0
    rows = {row["target"]: row for row in doc["targets"]}
    assert any(row["status"] == "met" and "Self warm-up" in target for target, row in rows.items())
