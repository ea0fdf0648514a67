"""`python -m devtools.demo --kwok` end to end: its own control plane, the real webhook, the examples, the
table; nothing left behind. (Where a real node can run, plain `make demo` runs there: test_demo_node.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devtools.controlplane.binaries import REPO_ROOT
from webhook.contract.durations import parse_duration

# `make demo` starts a control plane of its own, in a subprocess: no fixture tells the collection hook.
pytestmark = pytest.mark.controlplane


def _expected_pods() -> dict[str, tuple[str, str, int, float]]:
    """Deployment name -> (lane, app, replicas, register-delay seconds), read from the example manifests."""
    expected = {}
    for path in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Deployment":
                template = doc["spec"]["template"]["metadata"]
                annotations = template.get("annotations") or {}
                lane = annotations.get("lanes.io/lane", "base")
                app = template["labels"]["app.kubernetes.io/name"]
                delay = parse_duration(annotations.get("lanes.io/register-delay", "0s"))
                expected[doc["metadata"]["name"]] = (lane, app, int(doc["spec"].get("replicas", 1)), delay)
    return expected


def test_demo_prints_every_pod_with_its_lane_and_cleans_up(tmp_path: Path) -> None:
    before = {p.name for p in Path("/tmp").glob("lanes-demo-*")}
    result = subprocess.run(
        [sys.executable, "-m", "devtools.demo", "--kwok"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("POD "))
    rows = [line.split() for line in lines[header + 1 :] if line.strip() and not line.startswith("[")]
    expected = _expected_pods()
    assert len(rows) == sum(replicas for _, _, replicas, _ in expected.values())
    lanes = {lane for lane, _, _, _ in expected.values()}
    assert {delay for *_, delay in expected.values()} != {0}, "examples should show a register-delay"
    assert lanes >= {"base", "gray"}
    for row in rows:
        pod, lane, app, injected, gates, *_rest = row
        deployment = pod.rsplit("-", 2)[0]
        assert (lane, app) == expected[deployment][:2], row
        assert "lanes-agent" in injected
        assert gates == "lanes.io/registered"
        assert row[-2] == "Running"  # kwok's fake node ran it
        # the controller opened the gate register-delay after ContainersReady (timestamps have 1 s resolution)
        registered = float(row[-1].rstrip("s"))
        assert abs(registered - expected[deployment][3]) <= 1.5, row
    assert f"{len(rows)} pods, {len(rows)} Ready" in result.stdout
    assert "stopped and cleaned up" in result.stdout
    after = {p.name for p in Path("/tmp").glob("lanes-demo-*")}
    assert after <= before
