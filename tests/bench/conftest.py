"""The benchmark smoke tests are all ``slow``: each runs a benchmark end to end (``--quick`` still means tens of
seconds to minutes on 2 cores, and the admission one first builds its Go yardstick), so ``make test-fast`` leaves
them to ``make test``."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)
