"""Finding and building the control-plane binaries: clear failures, nothing half-built cached."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.controlplane import BinaryError, ControlPlane, binaries


def test_missing_go_is_one_clear_line(tmp_path: Path) -> None:
    env = {
        "PATH": str(Path(sys.executable).parent),  # python only, no go
        "HOME": str(tmp_path),
        "LANES_CACHE_DIR": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "devtools.controlplane", "ensure"],
        env=env,
        capture_output=True,
        text=True,
        cwd=binaries.REPO_ROOT,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "needs Go" in errors[0] and "KUBEBUILDER_ASSETS" in errors[0]
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(shutil.which("go") is None, reason="needs Go to produce a real build failure")
def test_build_failure_names_command_and_log_and_caches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "hack" / "broken"
    module.mkdir(parents=True)
    (module / "go.mod").write_text("module example.com/broken\n\ngo 1.21\n")
    (module / "main.go").write_text("package main\n\nfunc main() { undefinedCall() }\n")
    monkeypatch.setattr(binaries, "HACK_DIR", tmp_path / "hack")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    group = binaries._Group("broken", "broken", (".",), ("broken",), "v0", "-s -w")
    with pytest.raises(BinaryError) as caught:
        binaries._build_group(group, bin_dir, tmp_path / "logs")
    message = str(caught.value)
    assert "go build of broken failed" in message
    assert "undefined: undefinedCall" in message
    log = next((tmp_path / "logs").iterdir())
    assert str(log) in message
    assert list(bin_dir.iterdir()) == []  # nothing cached as if good
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".build-")] == []


def test_kubebuilder_assets_is_used_when_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, control_plane: ControlPlane
) -> None:
    cached = binaries.ensure_binaries()
    for binary in binaries.ALL_BINARIES:
        os.symlink(cached / binary, tmp_path / binary)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    assert binaries.ensure_binaries() == tmp_path


def test_kubebuilder_assets_without_apiserver_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(BinaryError, match="lacks etcd, kube-apiserver"):
        binaries.ensure_binaries()
