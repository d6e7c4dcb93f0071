"""A restart forgets nothing scoring used: the feature state is rebuilt from the validated data plus
the tail of the prediction and feedback logs, so scores after a restart of the real uvicorn process
have the offline features of everything the service saw before it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pandas as pd

from core.features import compute_features, feature_names
from core.predlog import read_feedback, read_predictions
from core.schemas import TRANSACTION_COLUMNS
from tests.api.factories import FEEDBACK_AUTH, bodies
from tests.api.test_api_server import start_server

if TYPE_CHECKING:
    from tests.api.conftest import Project

CHUNK = 200


def score(url: str, frame: pd.DataFrame) -> None:
    """Score ``frame`` in time order: the first rows one at a time, the rest in batches."""
    requests = bodies(frame)
    with httpx.Client(base_url=url, timeout=30) as http:
        for body in requests[:20]:
            response = http.post("/v1/score", json=body)
            assert response.status_code == 200, response.text
        for start in range(20, len(requests), CHUNK):
            response = http.post("/v1/score/batch", json={"transactions": requests[start : start + CHUNK]})
            assert response.status_code == 200, response.text


def send_labels(url: str, labels: dict[str, int]) -> None:
    items = [{"transaction_id": tid, "tx_fraud": fraud} for tid, fraud in labels.items()]
    with httpx.Client(base_url=url, timeout=30, headers=FEEDBACK_AUTH) as http:
        for start in range(0, len(items), CHUNK):
            response = http.post("/v1/feedback", json={"labels": items[start : start + CHUNK]})
            assert response.status_code == 200, response.text


def test_scores_after_a_restart_have_the_offline_features(project: Project, tmp_path: Path) -> None:
    # a copy of the session project: its own prediction log, the same validated data and registry
    root = tmp_path / "project"
    shutil.copytree(project.dir, root, ignore=shutil.ignore_patterns("predictions.db*"))
    copy = dataclasses.replace(project, dir=root)
    params = project.params
    delay = params.data.label_delay_days
    before = project.replay.sort_values("tx_datetime", kind="stable").reset_index(drop=True)
    # labels fed back for the first day: half of its transactions called fraud, so terminal risk shows them
    labels = {tid: n % 2 for n, tid in enumerate(before["transaction_id"])}
    # after the restart: the same cards at the same terminals, once the first day's labels count
    after = before.assign(
        transaction_id="after-" + before["transaction_id"],
        tx_datetime=before["tx_datetime"] + pd.Timedelta(days=delay + 1),
    )

    server = start_server(copy, tmp_path / "first.log")
    try:
        score(server.url, before)
        send_labels(server.url, labels)
    finally:
        server.stop()
    server = start_server(copy, tmp_path / "second.log")
    try:
        score(server.url, after)
    finally:
        server.stop()

    log = copy.settings().prediction_log
    assert set(read_feedback(log)["transaction_id"]) == set(labels)
    logged = read_predictions(log).set_index("transaction_id").loc[after["transaction_id"]]
    names = feature_names(params.features)
    history_fraud = project.history["tx_fraud"].to_numpy()

    def offline(seen: list[pd.DataFrame], fraud: list[np.ndarray]) -> pd.DataFrame:
        table = pd.concat([project.history, *seen, after], ignore_index=True)[TRANSACTION_COLUMNS]
        known = np.concatenate([history_fraud, *fraud, np.zeros(len(after))])
        return (
            compute_features(table, known, params.features, delay).iloc[-len(after) :].reset_index(drop=True)
        )

    first_day_fraud = np.array([labels[t] for t in before["transaction_id"]])
    expected = offline([before], [first_day_fraud])
    online = logged[[f"f_{name}" for name in names]].to_numpy(dtype=np.float64)
    gap = np.abs(online - expected[names].to_numpy(dtype=np.float64))
    assert gap.max() <= 1e-9, f"largest gap {gap.max()} in {names[int(gap.max(axis=0).argmax())]}"
    # not vacuous: without the first day's transactions, or without its labels, most features differ
    forgotten = offline([], [])
    unlabelled = offline([before], [np.zeros(len(before))])
    assert (forgotten["customer_nb_tx_30d"] != expected["customer_nb_tx_30d"]).mean() > 0.9
    assert (unlabelled["terminal_risk_7d"] != expected["terminal_risk_7d"]).mean() > 0.5
