"""One small simulated world and one model trained on it, shared by every model test of the session."""

from __future__ import annotations

import pytest

from core.params import Params
from tests.model.world import SmallWorld, make_world


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory, params: Params) -> SmallWorld:
    """42 simulated days (300 customers, 600 terminals) and the model fitted on them, built once."""
    return make_world(tmp_path_factory.mktemp("world"), params)
