"""The chart's Kubernetes version check (issue 11.8): a plain ``helm template`` renders, old clusters are refused.

Chart.yaml's ``kubeVersion`` used to make ``helm template charts/lanes`` fail ("chart requires kubeVersion >=1.30.0-0
which is incompatible with Kubernetes v1.20.0"): without ``--kube-version`` helm checks it against its compiled-in
v1.20.0. The check now lives in templates/kube-version-check.yaml: helm's placeholder renders, a real or explicit
version below 1.30 fails with a message that says what to do.
"""

from __future__ import annotations

import pytest

from devtools.controlplane import ControlPlane
from tests.chart.helm import CHART, Helm, HelmError


def test_plain_helm_template_renders(helm: Helm) -> None:
    out = helm.run("template", "lanes", str(CHART), "--namespace", "lanes-system")
    assert "kind: Deployment" in out and "kind: MutatingWebhookConfiguration" in out


@pytest.mark.parametrize("version", ["1.30.0", "1.37.2", "2.0.0"])
def test_supported_versions_render(helm: Helm, version: str) -> None:
    assert "kind: Deployment" in helm.run("template", "lanes", str(CHART), "--kube-version", version)


@pytest.mark.parametrize("version", ["1.25.0", "1.29.9", "1.21.3"])
def test_old_versions_are_refused_with_a_clear_message(helm: Helm, version: str) -> None:
    with pytest.raises(HelmError) as failure:
        helm.run("template", "lanes", str(CHART), "--kube-version", version)
    assert f"Lanes needs Kubernetes 1.30 or newer (native sidecar containers); the target cluster is v{version}" in (
        failure.value.stderr
    )
    assert "panic" not in failure.value.stderr


def test_install_dry_run_reads_the_real_server_version(helm: Helm, control_plane: ControlPlane, namespace: str) -> None:
    """Against a real API server helm uses the server's version (v1.37 here), so the check passes and renders."""
    out = helm.run(
        "install", "lanes", str(CHART), "--namespace", namespace, "--dry-run", kubeconfig=control_plane.kubeconfig
    )
    assert "kind: Deployment" in out
