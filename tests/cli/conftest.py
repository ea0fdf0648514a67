"""Fixtures of the CLI tests: the installed console scripts and kubectl's YAML reader (hack/yamlcheck)."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

from devtools.controlplane.binaries import BinaryError


def console_script(name: str) -> str:
    """The console script pip installed for this interpreter (``.venv/bin/NAME``), as a user runs it."""
    for directory in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"console script {name} is not installed next to {sys.executable}: run `make install`")
    return found


@pytest.fixture(scope="session")
def yamlcheck() -> Path:
    """kubectl's YAML-to-JSON conversion as a command, built from hack/yamlcheck (Go). In CI a missing Go fails."""
    from devtools.yamlcheck import ensure_yamlcheck

    try:
        return ensure_yamlcheck()
    except BinaryError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"yamlcheck unavailable in CI: {exc}", pytrace=False)
        pytest.skip(f"!!! SKIPPING kubectl-YAML tests: {exc} !!!")
