"""The API with its prediction and feedback logs in PostgreSQL (``FRAUDOPS_PREDICTION_LOG_URL``): what
it scores and the labels it takes land there, and a restarted app rebuilds its state and answers
resubmissions from there, never from a SQLite file."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.predlog import read_feedback, read_predictions
from serving.app import create_app
from tests.api.conftest import Project, fresh_prediction_log
from tests.api.factories import FEEDBACK_AUTH, bodies
from tests.unit.test_predlog import count_records

pytestmark = pytest.mark.postgres


def test_scores_and_labels_go_to_postgres_and_a_restart_reads_them_back(
    project: Project, postgres_database: str
) -> None:
    settings = project.settings(prediction_log_url=postgres_database)
    fresh_prediction_log(settings)  # no SQLite log left by other modules
    rows = bodies(project.replay.head(20))
    ids = [row["transaction_id"] for row in rows]
    with TestClient(create_app(settings)) as client:
        scored = client.post("/v1/score/batch", json={"transactions": rows})
        assert scored.status_code == 200, scored.text
        labels = [{"transaction_id": ids[0], "tx_fraud": 1, "tx_fraud_scenario": 2}]
        taken = client.post("/v1/feedback", json={"labels": labels}, headers=FEEDBACK_AUTH)
        assert taken.status_code == 200, taken.text
    assert sorted(read_predictions(postgres_database)["transaction_id"]) == sorted(ids)
    assert read_feedback(postgres_database).to_dict("records") == [
        {"transaction_id": ids[0], "tx_fraud": 1, "tx_fraud_scenario": 2}
    ]
    assert not settings.prediction_log.exists()

    with TestClient(create_app(settings)) as client:  # restarted: its state rebuilt from PostgreSQL
        again = client.post("/v1/score/batch", json={"transactions": rows[:5]})
        relabelled = client.post(
            "/v1/feedback", json={"labels": [{**labels[0], "tx_fraud": 0}]}, headers=FEEDBACK_AUTH
        )
    assert again.status_code == 200, again.text
    assert again.json() == {"predictions": scored.json()["predictions"][:5]}  # the stored verdicts
    assert count_records(postgres_database) == 20  # a resubmission is not logged again
    assert relabelled.status_code == 409, relabelled.text  # the label recorded in PostgreSQL
