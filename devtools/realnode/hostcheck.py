"""What a real-node run could leave on the host, captured before and after so a test can compare.

The machine is shared (other runs mount, start processes and build images at the same time), so each part is
narrowed to what *this* harness could have made: processes of its binaries or in its namespace, mounts of the
paths the node uses, cgroups named for the kubelet, the host's iptables rules (nothing else writes them here),
the kernel settings the kubelet and kube-proxy write, and the host paths their defaults point at.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devtools.realnode import cgroups
from devtools.realnode import config as cfg

#: Kernel settings the node's components write when they can: the kubelet's tunables, and the ones kube-proxy,
#: the bridge plugin and the namespace set up (per network namespace, so they must not move on the host either).
SYSCTLS = (
    *cfg.KUBELET_SYSCTLS,
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/netfilter/nf_conntrack_max",
)

#: Host paths the components' defaults point at; none may appear (or change, if they were there before).
HOST_PATHS = (
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/lib/cni",
    "/var/log/pods",
    "/var/log/containers",
    "/run/containerd",
    "/run/netns",
    "/etc/cni",
    "/opt/cni",
    "/usr/libexec/kubernetes",
    "/etc/kubernetes",
    "/etc/containerd",
    "/opt/containerd",
    "/etc/nri",
    "/opt/nri",
)

_MOUNT_MARKERS = (*HOST_PATHS, "/proc/sys/", "lanes-realnode-", "kubepods", "containerd", "/run ")


@dataclass(frozen=True)
class HostSnapshot:
    processes: frozenset[str]
    mounts: frozenset[str]
    cgroups: frozenset[str]
    iptables: str
    sysctls: tuple[tuple[str, str], ...]
    paths: tuple[tuple[str, str], ...]

    def differences(self, after: HostSnapshot) -> list[str]:
        """Human-readable lines for everything that is in ``after`` and was not in ``self`` (empty: clean)."""
        found = []
        found += [f"process left: {p}" for p in sorted(after.processes - self.processes)]
        found += [f"mount left: {m}" for m in sorted(after.mounts - self.mounts)]
        found += [f"cgroup left: {c}" for c in sorted(after.cgroups - self.cgroups)]
        if after.iptables != self.iptables:
            found.append(f"host iptables changed:\n--- before\n{self.iptables}\n--- after\n{after.iptables}")
        found += [
            f"host sysctl {k} changed: {v} -> {w}"
            for (k, v), (_, w) in zip(self.sysctls, after.sysctls, strict=True)
            if v != w
        ]
        found += [
            f"host path {k} changed: {v} -> {w}"
            for (k, v), (_, w) in zip(self.paths, after.paths, strict=True)
            if v != w
        ]
        return found


def _processes(markers: tuple[str, ...]) -> frozenset[str]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroup = Path(f"/proc/{entry}/cgroup").read_text()
            if any(m in cmdline for m in markers) or "lanes-realnode-" in cgroup or "kubepods" in cgroup:
                found.add(f"{entry} {cmdline.strip()[:200]}")
    return frozenset(found)


def _iptables(env: dict[str, str]) -> str:
    dumps = []
    for command in ("iptables-save", "ip6tables-save"):
        result = subprocess.run([command], capture_output=True, text=True, env=env)
        dumps.append("\n".join(line for line in result.stdout.splitlines() if not line.startswith("#")))
    return "\n".join(dumps)


def _path_state(path: str) -> str:
    target = Path(path)
    if not target.exists():
        return "absent"
    if target.is_dir():
        return "dir: " + ",".join(sorted(os.listdir(target)))
    return f"file of {target.stat().st_size} bytes"


def snapshot(env: dict[str, str], markers: tuple[str, ...]) -> HostSnapshot:
    """``env`` finds iptables-save (the node's unpacked Debian tools); ``markers`` are strings (binary folders, the
    run's folder) whose presence in a command line marks a process as the harness's."""
    mounts = frozenset(
        line for line in Path("/proc/self/mounts").read_text().splitlines() if any(m in line for m in _MOUNT_MARKERS)
    )
    groups: set[str] = set()
    for controller in cgroups.controllers():
        with contextlib.suppress(OSError):
            groups.update(
                f"{controller}/{d}" for d in os.listdir(controller) if "kubepods" in d or "lanes-realnode" in d
            )
    sysctls = []
    for key in SYSCTLS:
        try:
            sysctls.append((key, Path("/proc/sys", key).read_text().strip()))
        except OSError:
            sysctls.append((key, "absent"))
    return HostSnapshot(
        processes=_processes(markers),
        mounts=mounts,
        cgroups=frozenset(groups),
        iptables=_iptables(env),
        sysctls=tuple(sysctls),
        paths=tuple((p, _path_state(p)) for p in HOST_PATHS),
    )
