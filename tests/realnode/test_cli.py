"""``python -m devtools.realnode up`` keeps a node for exploring; ``... kubectl`` reaches it inside its namespace;
Ctrl-C removes it. Where a real node cannot run, it says why in one line."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import time

import pytest

from devtools.controlplane.binaries import REPO_ROOT
from devtools.realnode import preflight
from tests.realnode.conftest import unavailable


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", "devtools.realnode", *args]


def test_up_prints_a_kubeconfig_and_kubectl_works_inside() -> None:
    reason = preflight()
    if reason:
        unavailable(reason)
    proc = subprocess.Popen(
        _python("up", "--no-images"), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        output = "".join(lines)
        assert "real node Ready in" in output, output + (proc.stderr.read() if proc.poll() is not None else "")
        assert "kubeconfig for host processes" in output and "nsenter -t" in output
        result = subprocess.run(
            _python("kubectl", "get", "nodes", "--no-headers"), cwd=REPO_ROOT, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[:2] == ["lanes-node", "Ready"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(90)
    assert proc.returncode == 0
    gone = subprocess.run(_python("kubectl", "get", "nodes"), cwd=REPO_ROOT, capture_output=True, text=True)
    assert gone.returncode == 1 and "no real node is up" in gone.stderr


def test_without_root_it_says_why_in_one_line() -> None:
    if os.geteuid() != 0:
        result = subprocess.run(_python("up"), cwd=REPO_ROOT, capture_output=True, text=True)
    else:
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("no `nobody` user to drop to")
        result = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *_python("up")],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "HOME": "/tmp", "LANES_CACHE_DIR": "/nonexistent"},
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: a real node needs root (network + mount namespaces, cgroups, overlay mounts); run as root"]
