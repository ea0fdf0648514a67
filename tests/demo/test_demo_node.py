"""`make demo` on a real node: the chart, the examples as real pods, a rolling restart under load, and the
failed requests plain vs Lanes printed at the end; the node torn down afterwards.

Runs what `make demo` runs (``python -m devtools.demo``) as a subprocess. Where a real node cannot run the demo
falls back to kwok with one line saying why: this test then fails in CI (``CI`` set) and skips loudly elsewhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.lossless_node import CLAIMED, MODES
from devtools import demo_node
from devtools.controlplane.binaries import REPO_ROOT
from devtools.demo import load_examples
from devtools.realnode import preflight

FAILED = re.compile(
    r"failed requests plain vs Lanes: plain (\d+) of (\d+), Lanes (\d+) of (\d+) "
    r"\(new connections: plain (\d+)/(\d+), Lanes (\d+)/(\d+); keep-alive: plain (\d+)/(\d+), Lanes (\d+)/(\d+)\)"
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"real node unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"!!! SKIPPING the real-node demo: {reason} !!!")


def test_examples_run_the_sample_app_calling_what_they_prewarm() -> None:
    """The rewrite keeps the examples but for their image: a -> b -> c by ClusterIP (the node has no DNS)."""
    documents = load_examples(REPO_ROOT / "examples")
    ips = {"a": "10.96.0.10", "b": "10.96.0.11", "c": "10.96.0.12"}
    rewritten = {d["metadata"]["name"]: d for d in demo_node.node_examples(documents, "localhost/x:1", ips)}
    original = {d["metadata"]["name"]: d for d in documents}
    assert rewritten.keys() == original.keys()
    calls = {}
    for name, doc in rewritten.items():
        if doc["kind"] != "Deployment":
            assert doc == original[name]
            continue
        container = doc["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "localhost/x:1" and "args" not in container
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["SIGTERM"] == demo_node.APP_SIGTERM
        calls[name] = env.get("CALL")
        assert doc["spec"]["template"]["metadata"]["labels"] == original[name]["spec"]["template"]["metadata"]["labels"]
    assert calls == {"a": "http://10.96.0.11:8080/", "a-gray": "http://10.96.0.11:8080/",
                     "b": "http://10.96.0.12:8080/", "c": None, "c-gray": None}
    assert rewritten["a"]["spec"]["template"]["metadata"]["annotations"]["lanes.io/prewarm"] == "tcp://10.96.0.11:8080"


def test_a_broken_hop_anywhere_down_the_chain_counts_as_failed() -> None:
    """The sample app answers 200 even when a downstream call failed: the load client looks into the answer."""
    from bench.lossless_node_client import failed_call

    ok = {"service": "a", "calls": [{"service": "b", "calls": [{"service": "c", "calls": []}]}]}
    broken = {"service": "a", "calls": [{"service": "b", "calls": [{"error": "ConnectionRefusedError", "url": "u"}]}]}
    assert not failed_call(ok) and failed_call(broken) and failed_call({"calls": [{"error": "timeout"}]})


# the demo starts a real node (and its control plane) of its own, in a subprocess
@pytest.mark.controlplane
@pytest.mark.realnode
def test_demo_on_a_real_node_prints_failed_requests_plain_vs_lanes_and_cleans_up() -> None:
    why_not = preflight()
    if why_not is not None:
        _unavailable(why_not)
    result = subprocess.run(
        [sys.executable, "-m", "devtools.demo"], capture_output=True, text=True, timeout=540, cwd=REPO_ROOT
    )
    out = result.stdout
    if "running on kwok's fake nodes instead" in out:
        _unavailable(next(line for line in out.splitlines() if "kwok's fake nodes" in line))
    assert result.returncode == 0, out[-4000:] + result.stderr[-3000:]

    # the chart from helm, a namespace labelled by kubectl, real pods that Lanes injected
    assert "chart installed and injecting" in out
    assert f"kubectl label namespace {demo_node.LANES} lanes=enabled" in out
    rows = [line.split() for line in out.splitlines() if re.match(r"[a-c](-gray)?-[0-9a-z]+-[0-9a-z]{5}\s", line)]
    assert len(rows) == demo_node.workload(load_examples(REPO_ROOT / "examples")).replicas, out[-4000:]
    assert all("lanes-agent" in row[3] and row[4] == "lanes.io/registered" and row[-2] == "Running" for row in rows)
    # a request crossed the chain a -> b -> c of real pods
    chain = next(line for line in out.splitlines() if "one request to Service a" in line)
    assert re.search(r": a \(.+\) -> b \(.+\) -> c \(.+\)$", chain), chain

    line = FAILED.search(out)
    assert line, out[-4000:]
    print(f"\n{line.group(0)}")  # the measurement, for the log (`pytest -s`); asserted below only where claimed
    numbers = [int(n) for n in line.groups()]
    plain_failed, plain_total, lanes_failed, lanes_total = numbers[:4]
    by_mode = {"new": numbers[4:8], "keepalive": numbers[8:12]}
    assert plain_total > 0 and lanes_total > 0, line.group(0)
    for mode in MODES:
        plain_f, plain_n, lanes_f, lanes_n = by_mode[mode]
        assert plain_n > 0 and lanes_n > 0, line.group(0)
        assert plain_f <= plain_n and lanes_f <= lanes_n, line.group(0)
        # the demo's apps stop gracefully; where the benchmark claims lossless, Lanes must lose nothing
        if (demo_node.APP_SIGTERM, mode) in CLAIMED:
            assert lanes_f == 0, f"Lanes lost {mode} requests of a {demo_node.APP_SIGTERM} app: {line.group(0)}"
    assert plain_failed == by_mode["new"][0] + by_mode["keepalive"][0]
    assert lanes_failed == by_mode["new"][2] + by_mode["keepalive"][2]

    # torn down: the node's supervisor gone, its work directory removed
    ready = re.search(r"node Ready in \d+s \(supervisor pid (\d+); work dir (\S+)\)", out)
    assert ready, out[:3000]
    assert "stopped and cleaned up" in out
    assert not Path(ready.group(2)).exists()
    assert not Path(f"/proc/{ready.group(1)}").exists() or _zombie_or_other(int(ready.group(1)))


def _zombie_or_other(pid: int) -> bool:
    """A PID reused by an unrelated process (not our supervisor) is fine; ours would run devtools.realnode."""
    try:
        return b"devtools.realnode.inside" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
