"""Running the pinned helm (built from its Go module by devtools.controlplane) against charts/lanes."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devtools.controlplane.binaries import REPO_ROOT

CHART = REPO_ROOT / "charts" / "lanes"
#: The Kubernetes version `helm template` assumes (the chart requires >= 1.30); the test API server's version.
KUBE_VERSION = "1.37.2"


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries the command and its stderr."""

    def __init__(self, command: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        self.stderr = result.stderr
        self.returncode = result.returncode
        super().__init__(f"$ {' '.join(command)}\nexit {result.returncode}\n{result.stderr.strip()}")


@dataclass
class Helm:
    """A helm binary with its own config/cache/data directories (nothing read from or written to $HOME)."""

    binary: Path
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lanes-helm-")))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_") and k != "KUBECONFIG"}
        env.update(
            HELM_CONFIG_HOME=str(self.home / "config"),
            HELM_CACHE_HOME=str(self.home / "cache"),
            HELM_DATA_HOME=str(self.home / "data"),
        )
        return env

    def run(self, *args: str, kubeconfig: Path | None = None, timeout: float = 120) -> str:
        command = [str(self.binary), *args]
        if kubeconfig is not None:
            command.append(f"--kubeconfig={kubeconfig}")
        result = subprocess.run(command, capture_output=True, text=True, env=self.env(), timeout=timeout)
        if result.returncode != 0:
            raise HelmError(command, result)
        return result.stdout

    def template(
        self,
        values: dict[str, Any] | None = None,
        *,
        release: str = "lanes",
        namespace: str = "lanes-system",
        extra: Sequence[str] = (),
        values_files: Sequence[Path] = (),
    ) -> list[dict[str, Any]]:
        """Render the chart; returns the objects (documents that are not empty)."""
        args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
        for path in values_files:
            args += ["-f", str(path)]
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            yaml.safe_dump(values or {}, handle)
            values_path = handle.name
        try:
            out = self.run(*args, "-f", values_path, *extra)
        finally:
            os.unlink(values_path)
        return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The single object of a kind (and name); fails listing what there is otherwise."""
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
    assert len(found) == 1, f"expected one {kind}{'/' + name if name else ''}, rendered: {kinds}"
    return found[0]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert name in containers, f"no container {name!r} in {sorted(containers)}"
    return containers[name]
