"""The local control plane writes only under its own folder, never into the host's system directories."""

from __future__ import annotations

import os
import time
from pathlib import Path

from devtools.controlplane import ControlPlane

#: kube-controller-manager's default ``--flex-volume-plugin-dir``; its FlexVolume prober creates it at start.
HOST_FLEX_DIR = Path("/usr/libexec/kubernetes/kubelet-plugins/volume/exec")


def _command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _started_at(pid: int) -> float:
    """The process's start as a Unix time (field 22 of /proc/PID/stat is in clock ticks since boot)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[19])
    boot = next(
        float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
    )
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def test_controller_manager_keeps_its_flexvolume_dir_in_the_workdir(control_plane: ControlPlane) -> None:
    component = control_plane.components["kube-controller-manager"]
    assert component.alive() and component.process is not None
    assert control_plane.workdir is not None
    pid = component.process.pid
    # what the running process was really given, not what the harness meant to give it
    flags = [arg for arg in _command_line(pid) if arg.startswith("--flex-volume-plugin-dir=")]
    assert len(flags) == 1, _command_line(pid)
    plugin_dir = Path(flags[0].split("=", 1)[1])
    assert control_plane.workdir.resolve() in plugin_dir.resolve().parents
    # the prober has exactly one directory: having made this one, it did not make the default
    deadline = time.monotonic() + 30
    while not plugin_dir.is_dir() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert plugin_dir.is_dir(), f"kube-controller-manager did not create {plugin_dir}"
    # Where the host directory exists it must predate this run (a kubelet installed here, say); nothing here
    # deletes it to find out.
    if HOST_FLEX_DIR.exists():
        assert HOST_FLEX_DIR.stat().st_mtime < _started_at(pid), f"{HOST_FLEX_DIR} was created by this run"
