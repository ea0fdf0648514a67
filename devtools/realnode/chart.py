"""charts/lanes installed with ``helm install`` on the real node, from the images built here.

The webhook pods run behind their Service, the controller runs as their native sidecar and makes its own
certificates, and the webhook keeps the chart's default failurePolicy. ``kubectl label namespace X lanes=enabled``
(:func:`enable_namespace`) then turns injection on, exactly as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.controlplane.binaries import REPO_ROOT, ensure_binaries
from devtools.realnode.node import RealNode, RealNodeError

CHART = REPO_ROOT / "charts" / "lanes"
RELEASE = "lanes"
NAMESPACE = "lanes-system"


def split_ref(ref: str) -> tuple[str, str]:
    """``localhost/lanes/helper:dev`` -> (``localhost/lanes/helper``, ``dev``); a ref without a tag gets latest."""
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        return ref, "latest"
    return name, tag


def chart_values(images: dict[str, str], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Values for the node: the local images, never pulled; one replica (one node). Everything else default."""
    webhook, webhook_tag = split_ref(images["webhook"])
    helper, helper_tag = split_ref(images["helper"])
    values: dict[str, Any] = {
        "replicaCount": 1,
        "image": {
            "webhook": {"repository": webhook, "tag": webhook_tag, "pullPolicy": "Never"},
            "helper": {"repository": helper, "tag": helper_tag, "pullPolicy": "Never"},
        },
    }
    for key, value in (overrides or {}).items():
        values[key] = value
    return values


@dataclass
class InstalledLanes:
    node: RealNode
    helm: Path
    namespace: str = NAMESPACE
    release: str = RELEASE
    install_seconds: float = 0.0

    def helm_run(self, *args: str, timeout: float = 180) -> str:
        return run_helm(self.helm, self.node, *args, timeout=timeout)

    def uninstall(self) -> None:
        self.helm_run("uninstall", self.release, "--namespace", self.namespace, "--wait")


def run_helm(helm: Path, node: RealNode, *args: str, timeout: float = 180) -> str:
    with tempfile.TemporaryDirectory(prefix="lanes-helm-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_") and k != "KUBECONFIG"}
        env.update(HELM_CONFIG_HOME=f"{home}/config", HELM_CACHE_HOME=f"{home}/cache", HELM_DATA_HOME=f"{home}/data")
        command = [str(helm), *args, f"--kubeconfig={node.kubeconfig}"]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise RealNodeError(f"$ {' '.join(command)}\nexit {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def install(node: RealNode, overrides: dict[str, Any] | None = None, timeout: float = 180) -> InstalledLanes:
    """``helm install`` and wait until the webhook really injects (a server-side dry-run pod in an enabled
    namespace comes back with the agent), so tests start with admission working."""
    missing = [k for k in ("webhook", "helper") if k not in node.images]
    if missing:
        raise RealNodeError(f"the node has no {', '.join(missing)} image (devtools.images.ensure_images())")
    started = time.monotonic()
    helm = ensure_binaries(("helm",)) / "helm"
    installed = InstalledLanes(node, helm)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(chart_values(node.images, overrides), handle)
        values = handle.name
    try:
        installed.helm_run(
            "install",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "-f",
            values,
            "--wait",
            f"--timeout={int(timeout)}s",
            timeout=timeout + 30,
        )
    finally:
        Path(values).unlink()
    probe_ns = "lanes-probe"
    node.kubectl("create", "namespace", probe_ns)
    enable_namespace(node, probe_ns)
    deadline = time.monotonic() + timeout
    while not _injects(node, probe_ns):
        if time.monotonic() > deadline:
            logs = node.kubectl(
                "logs",
                "-n",
                NAMESPACE,
                "-l",
                "app.kubernetes.io/name=lanes",
                "--all-containers",
                "--tail=30",
                check=False,
            )
            raise RealNodeError(f"the chart's webhook did not inject within {timeout:.0f}s\n{logs.stdout}{logs.stderr}")
        time.sleep(0.5)
    node.kubectl("delete", "namespace", probe_ns, "--wait=false")
    installed.install_seconds = time.monotonic() - started
    return installed


def enable_namespace(node: RealNode, namespace: str) -> None:
    """What a user types: ``kubectl label namespace X lanes=enabled``."""
    node.kubectl("label", "namespace", namespace, "lanes=enabled", "--overwrite")


def _injects(node: RealNode, namespace: str) -> bool:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": node.images.get("sample-app", "localhost/x:1"),
                    "ports": [{"containerPort": 8080}],
                }
            ]
        },
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(pod, handle)
        path = handle.name
    try:
        result = node.kubectl("create", "--dry-run=server", "-o", "json", "-f", path, check=False)
    finally:
        Path(path).unlink()
    if result.returncode != 0:
        return False
    spec = json.loads(result.stdout).get("spec", {})
    names = [c["name"] for c in spec.get("initContainers", []) + spec.get("containers", [])]
    return any(n.startswith("lanes-") for n in names)
