"""Fixtures of the controller tests: the gate-honouring fake node (session) and a per-test environment.

Each test gets its own controller namespace (Lease, Secret), a unique label so its controllers only consider
the namespaces it enabled (other tests in the session enable namespaces too), and credentials bound to exactly
the documented RBAC rules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devtools.controlplane import ControlPlane
from tests.controller.support import GateNode, grant, restricted_kubeconfig
from tests.namespaces import make_namespace
from webhook.controller import CertTiming, ControllerSettings, LeaseTiming, RepairSettings
from webhook.kube.client import Kube, KubeError

#: Short leases so failover tests take seconds; same ratios as the defaults (15/10/2).
FAST_LEASE = LeaseTiming(lease_duration=3.0, renew_deadline=2.0, retry_period=0.4)


@pytest.fixture(scope="session")
def gate_node(control_plane: ControlPlane) -> Iterator[GateNode]:
    node = GateNode(control_plane).start()
    yield node
    node.stop()


@dataclass
class Env:
    """One test's corner of the shared cluster."""

    control_plane: ControlPlane
    kube: Kube  # admin
    node: str
    workdir: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    system_namespace: str = ""
    kubeconfig: Path = Path()
    created: list[str] = field(default_factory=list)

    @property
    def user(self) -> str:
        return f"lanes-controller-{self.token}"

    @property
    def labels(self) -> dict[str, str]:
        return {"lanes": "enabled", "lanes.test/run": self.token}

    @property
    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.labels.items())

    def namespace(self, enabled: bool = True) -> str:
        from kubernetes import config

        admin = config.new_client_from_config(config_file=str(self.control_plane.kubeconfig))
        name = make_namespace(admin, labels=self.labels if enabled else {"lanes.test/run": self.token})
        self.created.append(f"/api/v1/namespaces/{name}")
        return name

    def enable(self, namespace: str, enabled: bool = True) -> None:
        labels: dict[str, Any] = {"lanes": "enabled" if enabled else None}
        self.kube.patch(f"/api/v1/namespaces/{namespace}", {"metadata": {"labels": labels}}, "merge")

    def settings(self, **overrides: Any) -> ControllerSettings:
        """Fast settings for this environment, with RBAC for exactly what they need granted to the test user."""
        base = ControllerSettings(
            namespace=self.system_namespace,
            service="lanes",
            webhook_config=f"lanes-{self.token}",
            namespace_selector=self.selector,
            lease_name="lanes-controller",
            lease=FAST_LEASE,
            manage_certs=False,
            repair=RepairSettings(rate=5, burst=5, retry_after=1, replacement_timeout=5),
            certs=CertTiming(ca_lifetime=3600, leaf_lifetime=1800, propagation=1, overlap=1),
        )
        settings = dataclasses.replace(base, **overrides)
        self.created.extend(grant(self.kube, self.user, settings))
        return settings


@pytest.fixture
def env(control_plane: ControlPlane, k8s: Any, gate_node: GateNode, tmp_path: Path) -> Iterator[Env]:
    environment = Env(control_plane=control_plane, kube=Kube(k8s), node=gate_node.name, workdir=tmp_path)
    environment.system_namespace = environment.namespace(enabled=False)
    environment.kubeconfig = restricted_kubeconfig(control_plane, environment.user, tmp_path / "user")
    yield environment
    for path in reversed(environment.created):
        with contextlib.suppress(KubeError):
            environment.kube.delete(path)
