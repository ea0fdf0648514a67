"""Shared fixtures: one real control plane per test session, a fresh namespace per test; test selection.

The control plane is etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok, built from their Go
modules (see devtools/controlplane). When it cannot be had, CI fails; a local developer without Go gets a loud skip.

Every test that gets a control plane through its fixtures is marked ``controlplane`` here, so ``make test-fast``
(``-m "not controlplane and not slow"``) can leave out exactly those; tests that start one by other means (a
subprocess, a benchmark) carry the mark themselves.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from devtools.controlplane import BinaryError, ControlPlane, ControlPlaneError
from tests.namespaces import make_namespace


def _provides_control_plane(fixturedef: pytest.FixtureDef[object]) -> bool:
    """A fixture declared to give a ControlPlane: besides ``control_plane``, a module's private one (started apart
    so that restarting it leaves the shared one alone) is found by its type, whatever its name."""
    try:
        annotation = inspect.signature(fixturedef.func).return_annotation
    except (TypeError, ValueError):
        return False
    return "ControlPlane" in (annotation if isinstance(annotation, str) else repr(annotation))


def needs_control_plane(item: pytest.Item) -> bool:
    """Whether any fixture the test uses, directly or through other fixtures, is or gives a control plane."""
    names = getattr(item, "fixturenames", ())
    if "control_plane" in names:
        return True
    fixtureinfo = getattr(item, "_fixtureinfo", None)
    definitions = getattr(fixtureinfo, "name2fixturedefs", {})
    return any(_provides_control_plane(d) for name in names for d in definitions.get(name, ()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if needs_control_plane(item):
            item.add_marker(pytest.mark.controlplane)


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
