"""Fixtures of the chart checks: the pinned helm binary (built from its Go module, cached like the control plane)."""

from __future__ import annotations

import pytest

from devtools.controlplane import BinaryError, ensure_binaries
from tests.chart.helm import Helm


@pytest.fixture(scope="session")
def helm() -> Helm:
    try:
        bin_dir = ensure_binaries(("helm",))
    except BinaryError as exc:  # never a skip: the chart checks are part of `make test`
        pytest.fail(f"helm unavailable: {exc}", pytrace=False)
    return Helm(bin_dir / "helm")
