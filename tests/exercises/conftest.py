"""The exercises' proofs copy the project and run each check three times (minutes on shared cores):
they run under ``make exercises-proof`` (CI runs it after ``make test``), not in ``make test``."""

from __future__ import annotations

import os

import pytest

ENABLE = "FRAUDOPS_EXERCISE_PROOFS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this folder's tests unless ``make exercises-proof`` set :data:`ENABLE`."""
    if os.environ.get(ENABLE) == "1":
        return
    skip = pytest.mark.skip(reason=f"exercise proofs run with `make exercises-proof` ({ENABLE}=1)")
    for item in items:
        if "tests/exercises/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(skip)
