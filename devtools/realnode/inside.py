"""The node's supervisor: the long-running process that holds the node's private network + mount namespace.

Started by :class:`devtools.realnode.node.RealNode` as ``unshare --net --mount --propagation private -- python -m
devtools.realnode.inside WORKDIR``, it prepares the namespace (private /run, overlays over /var/lib and
/usr/libexec, /var/log bound into the run's folder, read-only sysctl files for the kubelet, loopback + a veth pair
holding the node IP), then runs the whole cluster inside it: the control plane (devtools.controlplane, so the API
server can reach webhook pods and ClusterIPs), containerd, kubelet and kube-proxy. It writes ``state.json`` when the
node is Ready (or ``failed.txt``), and on SIGTERM tears everything down in reverse order and removes the run's
cgroup tree. It is a child subreaper, so containerd's shims stay its descendants.

Everything it starts dies with it (``PR_SET_PDEATHSIG``); it gets SIGTERM when the process that started it dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from devtools.controlplane.cluster import Component, ControlPlane
from devtools.realnode import config as cfg
from devtools.realnode.cgroups import kill_tree, make_root, remove_tree
from devtools.realnode.dial import DialServer

_PR_SET_CHILD_SUBREAPER = 36


def _run(*args: str) -> None:
    result = subprocess.run(list(args), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"$ {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")


def _mounts(workdir: Path) -> None:
    """The node's view of the file system; private to this mount namespace, gone with it."""
    fs = workdir / "fs"
    _run("mount", "-t", "tmpfs", "-o", "mode=755,size=256m", "tmpfs", "/run")
    for target, name in (("/var/lib", "var-lib"), ("/usr/libexec", "usr-libexec")):
        upper, work = fs / name / "upper", fs / name / "work"
        upper.mkdir(parents=True)
        work.mkdir(parents=True)
        _run("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={target},upperdir={upper},workdir={work}", target)
    var_log = fs / "var-log"
    var_log.mkdir(parents=True)
    _run("mount", "--bind", str(var_log), "/var/log")
    sysctl_dir = fs / "sysctl"
    sysctl_dir.mkdir()
    for key, value in cfg.KUBELET_SYSCTLS.items():
        source = sysctl_dir / key.replace("/", ".")
        source.write_text(value + "\n")
        target = f"/proc/sys/{key}"
        _run("mount", "--bind", str(source), target)
        _run("mount", "-o", "remount,bind,ro", target)


def _network() -> None:
    """Loopback, and a veth pair whose both ends stay in this namespace: one carries the node IP."""
    _run("ip", "link", "set", "lo", "up")
    _run("ip", "link", "add", "lanes0", "type", "veth", "peer", "name", "lanes1")
    _run("ip", "addr", "add", f"{cfg.NODE_IP}/{cfg.NODE_PREFIX}", "dev", "lanes0")
    _run("ip", "link", "set", "lanes0", "up")
    _run("ip", "link", "set", "lanes1", "up")
    _run("ip", "route", "add", "default", "via", cfg.GATEWAY_IP)
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):  # per network namespace
        path = Path("/proc/sys") / key
        if path.exists():
            path.write_text("1\n")


def _netns_inode(pid: int | str = "self") -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def _processes_in_netns(inode: int) -> list[int]:
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                found.append(int(entry))
    return found


def _reap() -> None:
    """Collect exited orphans (shims reparented to us); Popen children are left to their Popen."""
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and fields[1] == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry), os.WNOHANG)


class Supervisor:
    """One node run; ``spec`` is what the host side wrote to ``spec.json``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.spec: dict[str, Any] = json.loads((workdir / "spec.json").read_text())
        self.paths = cfg.NodePaths(workdir)
        self.plane: ControlPlane | None = None
        self.components: dict[str, Component] = {}
        self.dial: DialServer | None = None
        self.timings: dict[str, float] = {}
        self.stopping = threading.Event()
        self.started = time.monotonic()

    def _mark(self, what: str) -> None:
        self.timings[what] = round(time.monotonic() - self.started, 2)
        print(f"[realnode] {what} at {self.timings[what]:.2f}s", flush=True)

    def _component(self, name: str, args: list[str]) -> Component:
        component = Component(name, args, self.paths.logs / f"{name}.log")
        self.components[name] = component
        component.start()
        return component

    # -- start --------------------------------------------------------------------------------------------

    def _start_containerd(self) -> None:
        bins = self.spec["binaries"]
        self.paths.containerd_dir.mkdir(parents=True)
        self.paths.containerd_config.write_text(
            cfg.containerd_config(
                self.paths, Path(self.spec["debian_bin"]) / "runc", Path(self.spec["cni_bin"]), self.spec["sandbox"]
            )
        )
        self.paths.cni_conf_dir.mkdir(parents=True)
        (self.paths.cni_conf_dir / "10-lanes.conflist").write_text(cfg.cni_conflist(self.paths))
        shim_dir = str(Path(bins["containerd-shim-runc-v2"]).parent)
        os.environ["PATH"] = f"{shim_dir}:{os.environ['PATH']}"  # containerd finds its shim in PATH
        containerd = self._component("containerd", [bins["containerd"], "--config", str(self.paths.containerd_config)])
        deadline = time.monotonic() + 30
        while not self._ctr("version", check=False):
            if not containerd.alive() or time.monotonic() > deadline:
                raise containerd.failure("did not answer on its socket")
            time.sleep(0.1)
        self._mark("containerd")

    def _import_images(self) -> None:
        bins = self.spec["binaries"]
        imports = [
            subprocess.Popen(
                [bins["ctr"], "--address", cfg.CONTAINERD_SOCKET, "-n", "k8s.io", "images", "import", archive],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for archive in self.spec["images"]
        ]
        for archive, proc in zip(self.spec["images"], imports, strict=True):
            _, err = proc.communicate(timeout=300)
            if proc.returncode != 0:
                raise RuntimeError(f"ctr images import {archive} failed: {err.strip()[-400:]}")
        self._mark("images imported")

    def _ctr(self, *args: str, check: bool = True) -> bool:
        result = subprocess.run(
            [self.spec["binaries"]["ctr"], "--address", cfg.CONTAINERD_SOCKET, *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: {result.stderr.strip()}")
        return result.returncode == 0

    def _start_control_plane(self) -> ControlPlane:
        plane = ControlPlane(
            controller_manager=True,
            scheduler=True,
            kwok=False,
            workdir=self.workdir / "controlplane",
            apiserver_args=[
                "--bind-address=0.0.0.0",  # pods reach it through the `kubernetes` Service at the node IP
                f"--advertise-address={cfg.NODE_IP}",
                "--endpoint-reconciler-type=lease",
                "--authorization-mode=Node",  # a list flag: appended to the harness's RBAC
                "--enable-admission-plugins=NodeRestriction",
                # logs, exec and port-forward reach the kubelet by the node's IP: its name resolves nowhere
                "--kubelet-preferred-address-types=InternalIP",
            ],
        )
        self.plane = plane
        plane.start()
        self._mark("control plane")
        return plane

    def _node_credentials(self, plane: ControlPlane) -> None:
        import datetime as dt

        from webhook.controller.certs import pki

        ca = pki.KeyPair(plane.path("ca.crt").read_bytes(), plane.path("ca.key").read_bytes())
        node = pki.issue(
            ca,
            f"system:node:{cfg.NODE_NAME}",
            dt.timedelta(days=7),
            organizations=("system:nodes",),
            server=False,
            client=True,
        )
        self.paths.kubelet_dir.mkdir(parents=True, exist_ok=True)
        cert, key = self.paths.kubelet_dir / "node.crt", self.paths.kubelet_dir / "node.key"
        cert.write_bytes(node.cert_pem)
        key.write_bytes(node.key_pem)
        key.chmod(0o600)
        self.paths.kubelet_kubeconfig.write_text(
            cfg.kubeconfig(plane.url, plane.ca_file, cert, key, f"system:node:{cfg.NODE_NAME}")
        )

    def _start_node(self, plane: ControlPlane) -> None:
        bins = self.spec["binaries"]
        self._node_credentials(plane)
        self.paths.resolv_conf.write_text(f"nameserver {cfg.NODE_IP}\noptions timeout:1 attempts:1\n")
        self.paths.kubelet_config.write_text(
            cfg.kubelet_config(self.paths, self.spec["cgroup_root"], tuple(self.spec.get("cluster_dns", ())))
        )
        self._component(
            "kubelet",
            [
                bins["kubelet"],
                f"--config={self.paths.kubelet_config}",
                f"--kubeconfig={self.paths.kubelet_kubeconfig}",
                f"--hostname-override={cfg.NODE_NAME}",
                f"--node-ip={cfg.NODE_IP}",
                "--v=2",
            ],
        )
        self.paths.kube_proxy_config.parent.mkdir(parents=True)
        self.paths.kube_proxy_config.write_text(cfg.kube_proxy_config(plane.kubeconfig))
        self._component("kube-proxy", [bins["kube-proxy"], f"--config={self.paths.kube_proxy_config}", "--v=1"])
        deadline = time.monotonic() + 120
        while not self._node_ready(plane):
            for component in self.components.values():
                if not component.alive():
                    raise component.failure("exited before the node was Ready")
            if time.monotonic() > deadline:
                raise self.components["kubelet"].failure("node not Ready after 120s")
            time.sleep(0.2)
        self._mark("node Ready")

    @staticmethod
    def _node_ready(plane: ControlPlane) -> bool:
        status, body = plane.get(f"/api/v1/nodes/{cfg.NODE_NAME}")
        if status != 200:
            return False
        conditions = json.loads(body).get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def start(self) -> None:
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1)
        _mounts(self.workdir)
        _network()
        for component in self.spec["cgroup_controllers"]:
            make_root(Path(component), self.spec["cgroup_root"])
        self.dial = DialServer(self.workdir / "dial.sock")
        self._mark("namespace")
        errors: list[BaseException] = []
        # every process starts from this (main) thread: PR_SET_PDEATHSIG fires when the *thread* that forked a
        # child ends, so a child started from a helper thread would be killed when that thread finishes
        self._start_containerd()

        def import_thread() -> None:
            try:
                self._import_images()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        importer = threading.Thread(target=import_thread, name="image-import")
        importer.start()
        plane = self._start_control_plane()
        importer.join()
        if errors:
            raise errors[0]
        self._start_node(plane)
        state = {
            "pid": os.getpid(),
            "netns_inode": _netns_inode(),
            "apiserver_port": plane.apiserver_port,
            "apiserver_url": plane.url,
            "kubeconfig": str(plane.kubeconfig),
            "ca": str(plane.ca_file),
            "admin_cert": str(plane.path("admin.crt")),
            "admin_key": str(plane.path("admin.key")),
            "timings": self.timings,
            "pids": {name: c.process.pid for name, c in self._all_components().items() if c.process},
        }
        tmp = self.workdir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.workdir / "state.json")

    def _all_components(self) -> dict[str, Component]:
        plane = dict(self.plane.components) if self.plane else {}
        return {**plane, **self.components}

    # -- stop ---------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Reverse order: pods' processes, kube-proxy and kubelet, containerd and its shims, the control plane;
        then the run's cgroup tree. The namespaces (and every mount, route and iptables rule in them) end with
        this process."""
        started = time.monotonic()
        root = self.spec["cgroup_root"]
        controllers = [Path(c) for c in self.spec["cgroup_controllers"]]
        for name in ("kube-proxy", "kubelet"):
            if name in self.components:
                self.components[name].stop(timeout=10)
        kill_tree(controllers, root)
        if "containerd" in self.components:
            self.components["containerd"].stop(timeout=10)
        survivors = set(_processes_in_netns(_netns_inode()))
        plane_pids = {c.process.pid for c in (self.plane.components.values() if self.plane else ()) if c.process}
        for pid in survivors - plane_pids:  # shims and anything a test started in the namespace
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.plane is not None:
            self.plane.stop()
        if self.dial is not None:
            self.dial.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            _reap()
            kill_tree(controllers, root)
            if remove_tree(controllers, root) and not _processes_in_netns(_netns_inode()):
                break
            time.sleep(0.2)
        print(f"[realnode] stopped in {time.monotonic() - started:.1f}s", flush=True)


def main(argv: list[str]) -> int:
    workdir = Path(argv[0])
    supervisor = Supervisor(workdir)

    def on_term(signum: int, frame: object) -> None:
        supervisor.stopping.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    code = 0
    try:
        supervisor.start()
        while not supervisor.stopping.wait(1):
            _reap()
    except BaseException as exc:  # the host side shows failed.txt as the reason
        (workdir / "failed.txt").write_text(f"{exc}\n\n{traceback.format_exc()}")
        code = 1
    finally:
        supervisor.stop()
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
