"""The model tests' small simulated world, and a guard for MLflow's process-wide URIs."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.params import Params
from core.schemas import LABEL_COLUMNS, TRANSACTION_COLUMNS
from core.simulator import SimulationConfig, write_simulation
from pipelines.features import build_feature_table
from pipelines.train import (
    Selection,
    Windows,
    fit_model,
    last_labelled_in,
    plan_windows,
    select_model,
    split_windows,
)

# 84 days: a 37-day feature warm-up, 21 training + 7 gap + 7 test days, 6 whose labels TODAY has not
# released, and a few days to spare
SIM = SimulationConfig(customers=300, terminals=600, days=84, seed=7, start_date=dt.date(2026, 1, 5))
TODAY = SIM.start_date + dt.timedelta(days=SIM.days)  # the day after the last simulated day


@dataclass(frozen=True)
class SmallWorld:
    """The simulated folder, its feature table, the windows planned on it and the model fitted there."""

    sim_dir: Path
    table: pd.DataFrame
    windows: Windows
    train: pd.DataFrame
    test: pd.DataFrame
    selection: Selection  # the hyperparameter search's choice and the threshold, as training makes them
    model: Any


def make_world(sim_dir: Path, params: Params) -> SmallWorld:
    """Simulate into ``sim_dir``, build the feature table with every label known, plan, search and fit."""
    _, tx = write_simulation(sim_dir, SIM)
    table = build_feature_table(tx[TRANSACTION_COLUMNS], tx[LABEL_COLUMNS], params)
    last = last_labelled_in(table, TODAY, params.data.label_delay_days)
    windows = plan_windows(last, params, first_day=SIM.start_date)
    train, test = split_windows(table, windows)
    selection = select_model(table, windows, params)
    model = fit_model(train, params, selection.hyper)
    return SmallWorld(sim_dir, table, windows, train, test, selection, model)


@contextmanager
def mlflow_uris_restored() -> Iterator[None]:
    """Put MLflow's process-wide tracking and registry URIs back as they were (training sets them)."""
    import mlflow

    # MLflow's setters keep these variables in step with its URIs (None unsets): restoring the
    # variables' values through the setters restores the URIs
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(env["MLFLOW_REGISTRY_URI"])
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
