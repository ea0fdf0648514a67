"""The data plane of the routing tests: Traefik (built from Go modules) reading the session's control plane, with
sample-app backends in a network namespace the run creates (see devtools/dataplane/harness.py).

One data plane per session (Traefik and its two Gateways); each test gets its own namespace (``apps``), whose
backends are stopped afterwards. Without the data plane CI fails; locally the tests skip loudly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from kubernetes import client

from devtools.controlplane import BinaryError, ControlPlane
from devtools.dataplane.harness import Apps, DataPlane, DataPlaneError


@pytest.fixture(scope="session")
def dataplane(
    request: pytest.FixtureRequest, control_plane: ControlPlane, k8s: client.ApiClient
) -> Iterator[DataPlane]:
    plane = DataPlane(control_plane, k8s)
    try:
        plane.start()
    except BinaryError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"data plane unavailable in CI: {exc}", pytrace=False)
        pytest.skip(f"!!! SKIPPING data-plane tests: {exc} !!!")
    except DataPlaneError as exc:
        pytest.fail(f"data plane failed to start: {exc}", pytrace=False)
    yield plane
    plane.keep_workdir = bool(request.session.testsfailed)
    plane.stop()
    kept = f"kept for failed tests: {plane.logs_dir}" if plane.keep_workdir else "removed"
    print(f"\ndata-plane startup: {plane.timings}; logs {kept}")


@pytest.fixture
def apps(dataplane: DataPlane, namespace: str) -> Iterator[Apps]:
    """A fresh namespace on the data plane: ``apps.service(...)``, ``apps.backend(...)``, ``apps.request(...)``."""
    scene = Apps(dataplane, namespace)
    yield scene
    scene.close()
