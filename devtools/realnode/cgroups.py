"""The run's own cgroup tree: created before the kubelet starts, emptied and removed at teardown.

cgroup hierarchies are shared with the host (a mount namespace does not hide them), so the kubelet's ``kubepods``
trees would otherwise land in the host's root cgroup. The kubelet's ``cgroupRoot`` puts them under
``/lanes-realnode-<id>`` in every hierarchy instead; removing that folder (depth first, once its processes are
gone) leaves the hierarchies as they were.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def controllers(mountinfo: str | None = None) -> list[Path]:
    """Mount points of every cgroup hierarchy (v1 controllers and the v2 one), from /proc/self/mountinfo."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    found = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split(" ", 1)[0]
        if fstype in ("cgroup", "cgroup2"):
            found.append(Path(left.split()[4]))
    return sorted(set(found))


def make_root(controller: Path, root: str) -> None:
    """Create ``root`` in one hierarchy; a new cpuset cgroup starts with no CPUs, so copy its parent's."""
    path = controller / root.strip("/")
    path.mkdir(exist_ok=True)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if (path / name).exists():
            (path / name).write_text((controller / name).read_text())


def _dirs_deepest_first(controller: Path, root: str) -> list[Path]:
    top = controller / root.strip("/")
    if not top.is_dir():
        return []
    found = [Path(dirpath) for dirpath, _, _ in os.walk(top)]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def processes(controllers_: list[Path], root: str) -> set[int]:
    pids: set[int] = set()
    for controller in controllers_:
        for path in _dirs_deepest_first(controller, root):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in (path / "cgroup.procs").read_text().split())
    return pids


def kill_tree(controllers_: list[Path], root: str) -> int:
    """SIGKILL every process in the tree (the pods' containers); returns how many were signalled."""
    pids = processes(controllers_, root)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def remove_tree(controllers_: list[Path], root: str) -> bool:
    """rmdir the tree in every hierarchy, deepest first; True when nothing of it is left."""
    left = False
    for controller in controllers_:
        for path in _dirs_deepest_first(controller, root):
            try:
                path.rmdir()
            except OSError:
                left = True
    return not left
