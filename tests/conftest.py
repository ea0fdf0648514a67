"""Shared fixtures: one real control plane per test session, a fresh namespace per test.

The control plane is etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok, built from their Go
modules (see webhook/envtest). When it cannot be had, CI fails; a local developer without Go gets a loud skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from devtools.controlplane import BinaryError, ControlPlane, ControlPlaneError
from tests.kube import make_namespace


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    plane = ControlPlane(controller_manager=True, scheduler=True, kwok=True)
    try:
        plane.start()
    except BinaryError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"control plane unavailable in CI: {exc}", pytrace=False)
        pytest.skip(f"!!! SKIPPING control-plane tests: {exc} !!! (run `make test`, which builds them)")
    except ControlPlaneError as exc:
        pytest.fail(f"control plane failed to start: {exc}", pytrace=False)
    yield plane
    failed = request.session.testsfailed
    plane.stop(remove_workdir=not failed)
    if failed:
        print(f"\ncontrol-plane logs (kept for {failed} failed test(s)):\n{plane.describe_logs()}")


@pytest.fixture(scope="session")
def k8s(control_plane: ControlPlane) -> client.ApiClient:
    """A kubernetes.client.ApiClient authenticated as system:masters."""

    return config.new_client_from_config(config_file=str(control_plane.kubeconfig))


@pytest.fixture
def namespace(k8s: client.ApiClient) -> Iterator[str]:
    """A fresh, unlabeled namespace, deleted after the test."""
    name = make_namespace(k8s)
    yield name
    client.CoreV1Api(k8s).delete_namespace(name)


@pytest.fixture
def enabled_namespace(k8s: client.ApiClient) -> Iterator[str]:
    """A fresh namespace labeled lanes=enabled, deleted after the test."""
    name = make_namespace(k8s, labels={"lanes": "enabled"})
    yield name
    client.CoreV1Api(k8s).delete_namespace(name)
