"""The host side of a real test node: start its supervisor in fresh namespaces, reach it, stop it.

The node (and the control plane it joins) runs inside a private network + mount namespace held by the
supervisor (inside.py). The host reaches in only through the supervisor's Unix socket (dial.py): the API server
is forwarded to a host loopback port, so the test process's Kubernetes client, helm and kubectl use an ordinary
kubeconfig (``RealNode.kubeconfig``) while the run lasts. Commands can also run inside the namespace
(``RealNode.nsenter``), with ``RealNode.ns_kubeconfig``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.controlplane.binaries import REPO_ROOT, BinaryError
from devtools.hostprocs import die_with_parent, linux_root_preflight
from devtools.realnode import cgroups, coredns
from devtools.realnode import config as cfg
from devtools.realnode.artifacts import NodeArtifacts, ensure_artifacts
from devtools.realnode.dial import Forwarder, dial

_COMMANDS = ("unshare", "nsenter", "mount", "ip")


class RealNodeUnavailable(RuntimeError):
    """This machine cannot run a real node (not root, no namespaces, a missing command); one line says why."""


class RealNodeError(RuntimeError):
    """The node started to come up and failed; the message carries the reason and where the logs are."""


def preflight() -> str | None:
    """Why a real node cannot run here, in one line; None when it can."""
    basic = linux_root_preflight(
        "a real node",
        linux="Linux",
        root="(network + mount namespaces, cgroups, overlay mounts); run as root",
        commands=_COMMANDS,
    )
    if basic is not None:
        return basic
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "a real node needs overlayfs (containerd's snapshotter and the /var/lib overlay)"
    if not any(c.name == "memory" for c in cgroups.controllers()):
        return "a real node needs the cgroup v1 memory controller mounted (this harness runs the kubelet on v1)"
    probe = subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create network + mount namespaces: {probe.stderr.strip() or probe.returncode}"
    return None


def _rss(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class RealNode:
    """A kubelet + containerd + kube-proxy node joined to its own control plane, all in private namespaces.

    ``with RealNode() as node: ...`` or ``start()``/``stop()``. ``kubeconfig`` is a system:masters kubeconfig for
    host processes; the node is named ``lanes-node`` and pods get addresses in 10.88.0.0/16.
    """

    with_project_images: bool = True
    keep_workdir: bool = False
    startup_timeout: float = 180

    workdir: Path = field(default=Path("."), init=False)
    artifacts: NodeArtifacts | None = field(default=None, init=False)
    state: dict[str, Any] = field(default_factory=dict, init=False)
    start_seconds: float = field(default=0.0, init=False)
    #: seconds from the start of ``start()`` until the cluster DNS answered (set by ``wait_dns``)
    dns_ready_seconds: float | None = field(default=None, init=False)
    #: seconds ``start()`` spent starting the creation of the cluster DNS objects (it does not wait for them)
    dns_deploy_seconds: float = field(default=0.0, init=False)
    cgroup_root: str = field(default="", init=False)
    _supervisor: subprocess.Popen[bytes] | None = field(default=None, init=False)
    #: the ``kubectl apply`` of the cluster DNS started at the end of ``start()``, collected by ``wait_dns``
    _dns_apply: subprocess.Popen[str] | None = field(default=None, init=False)
    _forwarders: dict[tuple[str, int], Forwarder] = field(default_factory=dict, init=False)
    _controllers: list[Path] = field(default_factory=list, init=False)
    #: held open from Ready to the end of stop(): the namespace (and so its inode number, by which stray processes
    #: are found) cannot be freed and reused by somebody else's namespace while we may still sweep by it
    _netns_fd: int | None = field(default=None, init=False)

    # -- paths and addresses ------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self._supervisor is not None
        return self._supervisor.pid

    @property
    def kubeconfig(self) -> Path:
        """For processes on the host: the API server through a loopback forward (valid while this object runs)."""
        return self.workdir / "host.kubeconfig"

    @property
    def ns_kubeconfig(self) -> Path:
        """For processes inside the namespace (``nsenter``): the API server at its own address."""
        return Path(self.state["kubeconfig"])

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def images(self) -> dict[str, str]:
        """Image references by name (``helper``, ``webhook``, ``sample-app``, ``coredns``) imported at start."""
        return dict(self.artifacts.refs) if self.artifacts else {}

    @property
    def has_cluster_dns(self) -> bool:
        """Whether this node runs CoreDNS (its image was built): pods then resolve Service names."""
        return "coredns" in self.images

    def wait_dns(self, timeout: float = 120) -> float:
        """Wait until the cluster DNS answers (kube-dns has a ready endpoint); seconds waited (0 once it did).
        Node start only deploys it, so whatever needs names calls this (the ``cluster_dns`` test fixture)."""
        if not self.has_cluster_dns:
            raise RealNodeUnavailable("this node runs no cluster DNS: the coredns image is missing (devtools.images)")
        if self.dns_ready_seconds is None:
            applying, self._dns_apply = self._dns_apply, None
            waited = coredns.wait_ready(self, applying, timeout)
            self.dns_ready_seconds = self.start_seconds + waited
            return waited
        return 0.0

    def binary(self, name: str) -> Path:
        assert self.artifacts is not None
        return self.artifacts.binaries[name]

    def dial(self, host: str, port: int, timeout: float = 15) -> socket.socket:
        """A TCP connection to ``host:port`` as seen from the node (a pod IP, a ClusterIP, the node IP)."""
        return dial(self.workdir / "dial.sock", host, port, timeout)

    def forward(self, host: str, port: int) -> int:
        """A host loopback port whose connections reach ``host:port`` inside the node; reused per target."""
        key = (host, port)
        if key not in self._forwarders:
            self._forwarders[key] = Forwarder(self.workdir / "dial.sock", host, port)
        return self._forwarders[key].port

    def nsenter(self, args: Sequence[str]) -> list[str]:
        """``args`` as a command line that runs inside the node's network and mount namespaces."""
        assert self.artifacts is not None
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "--", *args]

    def environment(self) -> dict[str, str]:
        assert self.artifacts is not None
        return self.artifacts.debian.environment()

    def run(self, args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run ``args`` inside the namespaces (text mode, output captured unless given)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("env", self.environment())
        return subprocess.run(self.nsenter(args), **kwargs)

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """kubectl inside the namespace, as system:masters; raises RealNodeError with its stderr when ``check``."""
        command = [str(self.binary("kubectl")), f"--kubeconfig={self.ns_kubeconfig}", *args]
        result = self.run(command, timeout=timeout)
        if check and result.returncode != 0:
            raise RealNodeError(f"$ kubectl {' '.join(args)}\nexit {result.returncode}: {result.stderr.strip()}")
        return result

    # -- lifecycle -----------------------------------------------------------------------------------------

    def _write_spec(self, artifacts: NodeArtifacts) -> None:
        spec = {
            "binaries": {k: str(v) for k, v in artifacts.binaries.items()},
            "debian_bin": str(artifacts.debian.bin),
            "cni_bin": str(artifacts.debian.cni_bin),
            "images": [str(p) for p in artifacts.images],
            "sandbox": artifacts.sandbox_image,
            "cgroup_root": self.cgroup_root,
            "cgroup_controllers": [str(c) for c in self._controllers],
            # ClusterFirst pods ask the cluster DNS only when the node will run it (coredns.deploy at start)
            "cluster_dns": [cfg.CLUSTER_DNS_IP] if self.has_cluster_dns else [],
        }
        (self.workdir / "spec.json").write_text(json.dumps(spec, indent=2))

    def _failure(self, what: str) -> RealNodeError:
        failed = self.workdir / "failed.txt"
        reason = failed.read_text(errors="replace").strip() if failed.is_file() else "(no failed.txt)"
        log = self.logs_dir / "supervisor.log"
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.is_file() else []
        return RealNodeError(
            f"real node {what}: {reason[:3000]}\n  logs: {self.logs_dir}\n  supervisor log tail:\n    "
            + "\n    ".join(tail)
        )

    def start(self) -> RealNode:
        reason = preflight()
        if reason is not None:
            raise RealNodeUnavailable(reason)
        try:
            artifacts = ensure_artifacts(self.with_project_images)
        except BinaryError as exc:
            raise RealNodeUnavailable(f"real node binaries unavailable: {exc}") from exc
        self.artifacts = artifacts
        started = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix="lanes-realnode-"))
        self.logs_dir.mkdir()
        self.cgroup_root = f"/lanes-realnode-{uuid.uuid4().hex[:10]}"
        self._controllers = cgroups.controllers()
        self._write_spec(artifacts)
        env = artifacts.debian.environment()
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("KUBECONFIG", None)
        with (self.logs_dir / "supervisor.log").open("wb") as log:
            self._supervisor = subprocess.Popen(
                [
                    "unshare",
                    "--net",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    sys.executable,
                    "-m",
                    "devtools.realnode.inside",
                    str(self.workdir),
                ],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        try:
            self._wait_ready(started)
            if self.has_cluster_dns:
                deploying = time.monotonic()
                self._dns_apply = coredns.deploy(self)
                self.dns_deploy_seconds = time.monotonic() - deploying
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        assert self._supervisor is not None
        state_file = self.workdir / "state.json"
        while not state_file.is_file():
            if self._supervisor.poll() is not None or (self.workdir / "failed.txt").is_file():
                raise self._failure("failed to start")
            if time.monotonic() - started > self.startup_timeout:
                raise self._failure(f"not Ready after {self.startup_timeout:.0f}s")
            time.sleep(0.1)
        self.state = json.loads(state_file.read_text())
        self._netns_fd = os.open(f"/proc/{self._supervisor.pid}/ns/net", os.O_RDONLY)
        if os.fstat(self._netns_fd).st_ino != self.state["netns_inode"]:
            raise self._failure("reported a network namespace it does not hold")
        port = self.forward("127.0.0.1", int(self.state["apiserver_port"]))
        self.kubeconfig.write_text(
            cfg.kubeconfig(
                f"https://127.0.0.1:{port}",
                Path(self.state["ca"]),
                Path(self.state["admin_cert"]),
                Path(self.state["admin_key"]),
                "admin",
            )
        )
        self.kubeconfig.chmod(0o600)

    def memory(self) -> dict[str, int]:
        """Resident memory in bytes: each node and control-plane process, the containerd shims and the pods."""
        usage = {name: _rss(pid) for name, pid in self.state.get("pids", {}).items()}
        inode = self.state.get("netns_inode")
        shims = 0
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if (
                        os.stat(f"/proc/{entry}/ns/net").st_ino == inode
                        and "shim" in Path(f"/proc/{entry}/comm").read_text()
                    ):
                        shims += _rss(int(entry))
        usage["shims"] = shims
        supervisor = self._supervisor.pid if self._supervisor else 0
        usage["supervisor"] = _rss(supervisor)
        for controller in self._controllers:
            if controller.name == "memory":
                with contextlib.suppress(OSError, ValueError):
                    path = controller / self.cgroup_root.strip("/") / "memory.usage_in_bytes"
                    usage["pods"] = int(path.read_text())
        return usage

    def stop(self, timeout: float = 60) -> None:
        """Tear the node down (the supervisor does it in reverse start order); safe to call twice."""
        if self._dns_apply is not None:  # nobody waited for the DNS: collect its kubectl
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._dns_apply.communicate(timeout=30)
            self._dns_apply = None
        for forwarder in self._forwarders.values():
            forwarder.close()
        self._forwarders.clear()
        proc = self._supervisor
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._sweep()
        if self._netns_fd is not None:
            os.close(self._netns_fd)
            self._netns_fd = None
        if not self.keep_workdir and self.workdir != Path(".") and self.workdir.is_dir():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _sweep(self) -> None:
        """What a supervisor killed with SIGKILL could not clean: the pods' processes, the cgroup tree and any
        process left in the node's network namespace."""
        if not self.cgroup_root:
            return
        deadline = time.monotonic() + 10
        inode = self.state.get("netns_inode") if self._netns_fd is not None else None
        while time.monotonic() < deadline:
            cgroups.kill_tree(self._controllers, self.cgroup_root)
            if inode is not None:
                for entry in os.listdir("/proc"):
                    if entry.isdigit():
                        with contextlib.suppress(OSError):
                            if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                                os.kill(int(entry), signal.SIGKILL)
            if cgroups.remove_tree(self._controllers, self.cgroup_root):
                return
            time.sleep(0.2)

    def __enter__(self) -> RealNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[RealNode]:
    node = RealNode(**kwargs)
    node.start()
    try:
        yield node
    finally:
        node.stop()
