"""A tiny simulated world for the data tests: ten days in the ``fraudops simulate`` layout."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core.simulator import SimulationConfig, write_simulation

SIM = SimulationConfig(customers=50, terminals=100, days=10, seed=11, start_date=dt.date(2026, 3, 1))


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated folder (tests only read it)."""
    out = tmp_path_factory.mktemp("sim")
    write_simulation(out, SIM)
    return out


@pytest.fixture(scope="session")
def sim_days() -> list[dt.date]:
    """The simulated days, oldest first."""
    return [SIM.start_date + dt.timedelta(days=i) for i in range(SIM.days)]
