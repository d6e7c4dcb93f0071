"""Training/serving parity: a stream replayed through the API gets exactly the offline features.

A world of its own (the session's model and registry, a longer simulation): 21 days warm-start the
service, then more than 10,000 transactions of the following days are scored through the API (some one
at a time, the rest in batches, as rows and as columns) while each day's labels come back through ``POST /v1/feedback``. The
features the service logged must equal ``core.features.compute_features`` on the whole table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from core.features import compute_features, feature_names
from core.predlog import read_predictions
from core.simulator import SimulationConfig, write_simulation
from serving.app import create_app
from tests.api.conftest import SIM, write_validated
from tests.api.factories import FEEDBACK_AUTH, bodies, columns

if TYPE_CHECKING:
    from tests.api.conftest import Project

WARM_DAYS, REPLAY_DAYS = 21, 18  # about 600 transactions a day: more than 10,000 replayed
SINGLE_PER_DAY = 40  # scored one request each; the rest of the day in batches
BATCH_ROWS = 500


@dataclass
class Replayed:
    table: pd.DataFrame  # every simulated transaction with its label, time-ordered
    replay: pd.DataFrame  # the part scored through the API
    logged: pd.DataFrame  # the prediction log after the replay


@pytest.fixture(scope="module")
def replayed(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    root = tmp_path_factory.mktemp("parity")
    (root / "params.yaml").write_text((project.dir / "params.yaml").read_text())
    cfg = SimulationConfig(**SIM, days=WARM_DAYS + REPLAY_DAYS, seed=11, start_date=dt.date(2026, 1, 1))
    _, table = write_simulation(root / "sim", cfg)
    table = table.sort_values("tx_datetime", kind="stable").reset_index(drop=True)
    warm = table["tx_datetime"] < pd.Timestamp(cfg.start_date + dt.timedelta(days=WARM_DAYS), tz="UTC")
    write_validated(root, table[warm])
    replay = table[~warm].reset_index(drop=True)
    settings = project.settings(project_dir=root, mlflow_tracking_uri=project.settings().tracking_uri)
    sent = {"rows": 0, "columns": 0}
    with TestClient(create_app(settings)) as client:
        for n, (_, day) in enumerate(replay.groupby(replay["tx_datetime"].dt.date, sort=True)):
            requests = bodies(day)
            for body in requests[:SINGLE_PER_DAY]:
                response = client.post("/v1/score", json=body)
                assert response.status_code == 200, response.text
            for start in range(SINGLE_PER_DAY, len(requests), BATCH_ROWS):
                chunk = requests[start : start + BATCH_ROWS]
                if n % 2:  # every other day's batches as columns
                    response = client.post("/v1/score/columns", json=columns(chunk))
                    answered = response.json()["transaction_id"] if response.status_code == 200 else None
                else:
                    response = client.post("/v1/score/batch", json={"transactions": chunk})
                    answered = [p["transaction_id"] for p in response.json().get("predictions", [])]
                assert response.status_code == 200, response.text
                assert answered == [row["transaction_id"] for row in chunk]
                sent["columns" if n % 2 else "rows"] += len(chunk)
            labels = [
                {"transaction_id": tid, "tx_fraud": int(fraud)}
                for tid, fraud in zip(day["transaction_id"], day["tx_fraud"], strict=True)
            ]
            for start in range(0, len(labels), BATCH_ROWS):
                response = client.post(
                    "/v1/feedback", json={"labels": labels[start : start + BATCH_ROWS]}, headers=FEEDBACK_AUTH
                )
                assert response.status_code == 200, response.text
    # leaving the client ran the app's shutdown, which flushes the prediction log
    logged = read_predictions(settings.prediction_log).set_index("transaction_id")
    assert min(sent.values()) > 3_000  # both batch forms carry a good part of the stream
    yield Replayed(table, replay, logged.loc[replay["transaction_id"]].reset_index())


def test_replayed_stream_has_the_offline_features(replayed: Replayed, project: Project) -> None:
    params = project.params
    names = feature_names(params.features)
    assert len(replayed.replay) >= 10_000
    offline = compute_features(
        replayed.table, replayed.table["tx_fraud"].to_numpy(), params.features, params.data.label_delay_days
    )
    expected = offline[replayed.table["transaction_id"].isin(replayed.replay["transaction_id"]).to_numpy()]
    online = replayed.logged[[f"f_{name}" for name in names]].to_numpy(dtype=np.float64)
    gap = np.abs(online - expected[names].to_numpy(dtype=np.float64))
    assert gap.max() <= 1e-9, f"largest gap {gap.max()} in {names[int(gap.max(axis=0).argmax())]}"
    # the comparison is not vacuous: history, labels fed back through the API and windows all matter
    assert (expected["customer_nb_tx_30d"] > 1).mean() > 0.95
    assert (expected["terminal_risk_30d"] > 0).mean() > 0.02
    # labels that came back through /v1/feedback during the replay changed terminal risk
    in_replay = replayed.table["transaction_id"].isin(replayed.replay["transaction_id"])
    warm_labels_only = replayed.table["tx_fraud"].where(~in_replay, 0)
    without_feedback = compute_features(
        replayed.table, warm_labels_only.to_numpy(), params.features, params.data.label_delay_days
    )
    risk = without_feedback["terminal_risk_30d"].to_numpy()[expected.index.to_numpy()]
    assert (risk != expected["terminal_risk_30d"].to_numpy()).sum() > 50


def test_replayed_stream_logs_one_verdict_per_transaction(replayed: Replayed) -> None:
    logged = replayed.logged
    assert logged["transaction_id"].tolist() == replayed.replay["transaction_id"].tolist()
    assert logged["fraud_probability"].between(0, 1).all()
    assert (logged["is_fraud"].astype(bool) == (logged["fraud_probability"] >= logged["threshold"])).all()
