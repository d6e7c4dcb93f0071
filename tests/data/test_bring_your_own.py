"""Bring your own data: day files that never came from ``core.simulator`` go through ingest and training.

A small bank export is made here with its own generator (numpy and pandas only): its own transaction
ids, no ``tx_fraud_scenario`` column in the labels, amounts and fraud drawn its own way. The real
ingest flow (a Prefect flow run, DVC) stores and versions it in a throwaway project, and the real
training cycle (DVC stages, MLflow store and registry) registers a model trained on it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from core.clock import last_labelled_day, set_today
from core.params import load_params
from core.registry import CHAMPION, TAG_DATA_VERSION
from core.settings import Settings, get_settings
from pipelines.versioning import data_version
from tests.conftest import make_project
from tests.model.world import mlflow_uris_restored

START = dt.date(2026, 5, 4)
DAYS = 80  # the 37-day feature warm-up, 21 training + 7 gap + 7 test days, 6 unreleased, 1 spare
TODAY = START + dt.timedelta(days=DAYS)  # the day after the last one


def write_bank_export(out: Path, days: int = DAYS, seed: int = 3) -> int:
    """Write ``out/transactions/<day>.parquet`` and ``out/labels/<day>.parquet``; the number of frauds.

    Fraud is learnable the way it is at a bank: very large amounts, and terminals that, once
    compromised, see fraud on every card for four weeks.
    """
    rng = np.random.default_rng(seed)
    customers, terminals = 150, 300
    compromised_until = np.full(terminals, -1)  # the last day a terminal is compromised (-1: never)
    frauds = 0
    for d in range(days):
        day = START + dt.timedelta(days=d)
        if d % 3 == 0:
            compromised_until[rng.integers(terminals)] = d + 27
        per_customer = rng.poisson(2.0, customers)
        n = int(per_customer.sum())
        terminal = rng.integers(terminals, size=n)
        amount = np.round(rng.lognormal(3.5, 0.8, n), 2)
        fraud = (amount > 250) | (compromised_until[terminal] >= d)
        seconds = np.sort(rng.integers(0, 86_400, n))
        stamps = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(seconds, unit="s")
        ids = [f"bank-{day:%Y%m%d}-{i:05d}" for i in range(n)]
        tx = pd.DataFrame(
            {
                "transaction_id": ids,
                "tx_datetime": stamps.as_unit("us"),
                "customer_id": rng.permutation(np.repeat(np.arange(customers), per_customer)),
                "terminal_id": terminal,
                "tx_amount": amount,
            }
        )
        labels = pd.DataFrame({"transaction_id": ids, "tx_fraud": fraud.astype(int)})  # no scenario
        for kind, frame in (("transactions", tx), ("labels", labels)):
            (out / kind).mkdir(parents=True, exist_ok=True)
            frame.to_parquet(out / kind / f"{day}.parquet", index=False)
        frauds += int(fraud.sum())
    return frauds


def quick_params(path: Path) -> None:
    """Fewer trees, folds and searched values in the project's params.yaml: the same cycle, faster."""
    values = yaml.safe_load(path.read_text(encoding="utf-8"))
    values["model"]["hyperparameters"]["max_iter"] = 50
    values["model"]["search"] = {"fraud_weight": [10.0]}
    values["model"]["validation_folds"] = 1
    values["evaluation"]["prequential_folds"] = 1
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")


@pytest.fixture
def byod_project(tmp_path: Path) -> Iterator[Settings]:
    """A throwaway project (own git, DVC and MLflow store) whose clock says TODAY."""
    root = make_project(tmp_path / "project")
    with pytest.MonkeyPatch.context() as mp, mlflow_uris_restored():
        mp.setenv("FRAUDOPS_PROJECT_DIR", str(root))  # read by the flows and the DVC stages' processes
        mp.setenv("DVC_SITE_CACHE_DIR", str(tmp_path / "dvc-site"))
        mp.setenv("PATH", os.environ["PATH"])  # reproduce() prepends this python's bin folder
        mp.chdir(root)
        quick_params(root / "params.yaml")
        get_settings.cache_clear()
        settings = get_settings()
        set_today(settings.clock_file, TODAY)
        yield settings
        get_settings.cache_clear()


def test_a_foreign_export_is_ingested_and_trains_a_registered_champion(
    tmp_path: Path, byod_project: Settings, prefect_server: None
) -> None:
    from mlflow import MlflowClient

    from pipelines.flows import ingest_flow
    from pipelines.training import run_training

    params = load_params(byod_project.project_dir / "params.yaml")  # the project's, made quick
    export = tmp_path / "bank-export"
    frauds = write_bank_export(export)
    assert 0.005 < frauds / sum(len(pd.read_parquet(p)) for p in export.glob("labels/*.parquet")) < 0.05

    report = ingest_flow([str(export)])
    statuses = [(o.kind, o.status) for o in report.outcomes]
    delay = params.data.label_delay_days
    assert statuses.count(("transactions", "ingested")) == DAYS
    released = (last_labelled_day(TODAY, delay) - START).days + 1
    assert released == DAYS - delay + 1  # TODAY knows the labels of the day a label delay before it
    assert statuses.count(("labels", "ingested")) == released
    assert statuses.count(("labels", "pending")) == DAYS - released  # the newest days wait for the clock
    assert all(o.quarantined == 0 and o.duplicates == 0 for o in report.outcomes)
    assert report.data_version == data_version(byod_project.project_dir)

    outcome = run_training(byod_project, params, "bring your own data")
    floor = outcome.metrics["average_precision_random"] + params.gate.first_model_ap_margin
    assert (outcome.version, outcome.alias) == ("1", CHAMPION)
    assert outcome.metrics["average_precision"] > floor
    assert outcome.data_version == report.data_version
    assert outcome.windows.test_end == last_labelled_day(TODAY, delay)  # the newest released labels

    registry = MlflowClient(tracking_uri=byod_project.tracking_uri, registry_uri=byod_project.tracking_uri)
    champion = registry.get_model_version_by_alias(byod_project.model_name, CHAMPION)
    assert (str(champion.version), champion.run_id) == ("1", outcome.run_id)
    assert champion.tags[TAG_DATA_VERSION] == report.data_version
