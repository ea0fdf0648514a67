"""Fixtures of the chart checks: the pinned helm binary (built from its Go module, cached like the control plane)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.controlplane import BinaryError, ensure_binaries
from tests.chart.helm import Helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    try:
        bin_dir = ensure_binaries(("helm",))
    except BinaryError as exc:  # never a skip: the chart checks are part of `make test`
        pytest.fail(f"helm unavailable: {exc}", pytrace=False)
    home: Path = tmp_path_factory.mktemp("helm-home")  # pytest's own temp root: no lanes-helm-* left in /tmp
    yield Helm(bin_dir / "helm", home=home)
