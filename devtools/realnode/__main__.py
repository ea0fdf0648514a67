"""``python -m devtools.realnode [ensure|up|kubectl ARGS...|exec CMD...]``.

``up`` starts a node (and its control plane) and keeps it until Ctrl-C, printing a kubeconfig for host processes
and how to run kubectl inside the namespace; ``kubectl`` and ``exec`` run in the namespace of the node that ``up``
keeps (found through ``~/.cache/lanes/realnode-current.json``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from devtools.controlplane.binaries import BinaryError, cache_root
from devtools.realnode.artifacts import ensure_artifacts
from devtools.realnode.node import RealNode, RealNodeError, RealNodeUnavailable

USAGE = "usage: python -m devtools.realnode [ensure | up [--no-images] | kubectl ARGS... | exec CMD...]"


def _current_file() -> Path:
    return cache_root() / "realnode-current.json"


def _up(args: list[str]) -> int:
    node = RealNode(with_project_images="--no-images" not in args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    node.start()
    current = _current_file()
    try:
        current.parent.mkdir(parents=True, exist_ok=True)
        kubectl = node.binary("kubectl")
        current.write_text(
            json.dumps(
                {
                    "pid": node.pid,
                    "kubectl": str(kubectl),
                    "ns_kubeconfig": str(node.ns_kubeconfig),
                    "kubeconfig": str(node.kubeconfig),
                    "env_path": node.environment()["PATH"],
                }
            )
        )
        memory = sum(node.memory().values())
        print(
            f"real node Ready in {node.start_seconds:.1f}s ({memory / 2**20:.0f} MiB resident); "
            f"timings inside: {node.state['timings']}\n"
            f"  kubeconfig for host processes (while this runs): {node.kubeconfig}\n"
            f"    KUBECONFIG={node.kubeconfig} {kubectl} get nodes -o wide\n"
            f"  kubectl inside the namespace:\n"
            f"    python -m devtools.realnode kubectl get pods -A\n"
            f"    nsenter -t {node.pid} -n -m -- {kubectl} --kubeconfig={node.ns_kubeconfig} get nodes\n"
            f"  images: {node.images or 'pause only'}; logs: {node.logs_dir}\n"
            f"Ctrl-C stops it and removes everything it made.",
            flush=True,
        )
        while not stop.wait(1.0):  # in slices: a signal landing on another thread wakes no timeless wait
            pass
    finally:
        current.unlink(missing_ok=True)
        node.stop()
    return 0


def _in_namespace(command: list[str], kubectl: bool) -> int:
    current = _current_file()
    if not current.is_file():
        print("error: no real node is up; start one with `python -m devtools.realnode up`", file=sys.stderr)
        return 1
    info = json.loads(current.read_text())
    if not Path(f"/proc/{info['pid']}").exists():
        current.unlink(missing_ok=True)
        print("error: the real node that was up has stopped; start one with `... up`", file=sys.stderr)
        return 1
    if kubectl:
        command = [info["kubectl"], f"--kubeconfig={info['ns_kubeconfig']}", *command]
    env = dict(os.environ, PATH=info["env_path"])
    return subprocess.run(["nsenter", "-t", str(info["pid"]), "-n", "-m", "--", *command], env=env).returncode


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command, rest = (args[0], args[1:]) if args else ("", [])
    try:
        if command == "ensure":
            artifacts = ensure_artifacts(with_project_images="--no-images" not in rest)
            print(
                f"real node artifacts ready: {sorted(artifacts.binaries)}; images: {[str(p) for p in artifacts.images]}"
            )
            return 0
        if command == "up":
            return _up(rest)
        if command == "kubectl":
            return _in_namespace(rest, kubectl=True)
        if command == "exec" and rest:
            return _in_namespace(rest, kubectl=False)
    except (RealNodeUnavailable, RealNodeError, BinaryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
