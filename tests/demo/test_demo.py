"""`make demo` end to end: its own control plane, the real webhook, the examples, the table; nothing left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from webhook.envtest.binaries import REPO_ROOT


def _expected_pods() -> dict[str, tuple[str, str, int]]:
    """Deployment name -> (lane, app, replicas), read from the example manifests themselves."""
    expected = {}
    for path in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Deployment":
                template = doc["spec"]["template"]["metadata"]
                lane = (template.get("annotations") or {}).get("lanes.io/lane", "base")
                app = template["labels"]["app.kubernetes.io/name"]
                expected[doc["metadata"]["name"]] = (lane, app, int(doc["spec"].get("replicas", 1)))
    return expected


def test_demo_prints_every_pod_with_its_lane_and_cleans_up(tmp_path: Path) -> None:
    before = {p.name for p in Path("/tmp").glob("lanes-demo-*")}
    result = subprocess.run(
        [sys.executable, "-m", "webhook.demo"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("POD "))
    rows = [line.split() for line in lines[header + 1 :] if line.strip() and not line.startswith("[")]
    expected = _expected_pods()
    assert len(rows) == sum(replicas for _, _, replicas in expected.values())
    lanes = {lane for lane, _, _ in expected.values()}
    assert lanes >= {"base", "gray"}
    for row in rows:
        pod, lane, app, injected, gates, *_rest = row
        deployment = pod.rsplit("-", 2)[0]
        assert (lane, app) == expected[deployment][:2], row
        assert "lanes-agent" in injected
        assert gates == "lanes.io/registered"
        assert row[-1] == "Running"  # kwok's fake node ran it
    assert "stopped and cleaned up" in result.stdout
    after = {p.name for p in Path("/tmp").glob("lanes-demo-*")}
    assert after <= before
