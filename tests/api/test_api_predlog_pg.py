"""The API with its prediction and feedback logs in PostgreSQL (``FRAUDOPS_PREDICTION_LOG_URL``): what
it scores and the labels it takes land there, and a restarted app rebuilds its state and answers
resubmissions from there, never from a SQLite file."""

from __future__ import annotations

import time

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


def test_postgres_refusing_connections_answers_503_with_retry_after_and_loses_no_acknowledged_score(
    project: Project, postgres_database: str
) -> None:
    """The log's database down under a running API: scoring and feedback answer 503 with Retry-After
    (never a 500, never a score the log cannot keep), and once PostgreSQL takes connections again the
    API scores again and every acknowledged score is in the log once."""
    from tests.conftest import connect_postgres
    from tests.unit.test_predlog_pg import terminate_log_connections

    settings = project.settings(prediction_log_url=postgres_database, log_retry_interval_s=0.05)
    fresh_prediction_log(settings)
    rows = bodies(project.replay.head(200))
    name = postgres_database.rsplit("/", 1)[1]
    admin = connect_postgres()
    acknowledged: list[str] = []
    try:
        with TestClient(create_app(settings)) as client:
            first = client.post("/v1/score", json=rows[0])
            assert first.status_code == 200, first.text
            acknowledged.append(rows[0]["transaction_id"])
            with admin.cursor() as cur:
                cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            terminate_log_connections(postgres_database)
            refused = None
            for row in rows[1:150]:  # the writer finds the database gone within a few of its retries
                answer = client.post("/v1/score", json=row)
                assert answer.status_code in (200, 503), answer.text
                if answer.status_code == 503:
                    refused = answer
                    break
                acknowledged.append(row["transaction_id"])
                time.sleep(0.02)
            assert refused is not None, "the API kept scoring with its log's database refusing connections"
            assert refused.headers["Retry-After"].isdigit()
            assert "not currently accepting connections" in refused.json()["detail"]
            labels = [{"transaction_id": acknowledged[0], "tx_fraud": 0, "tx_fraud_scenario": 0}]
            feedback = client.post("/v1/feedback", json={"labels": labels}, headers=FEEDBACK_AUTH)
            assert feedback.status_code == 503, feedback.text
            assert feedback.headers["Retry-After"].isdigit()

            with admin.cursor() as cur:
                cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            deadline = time.monotonic() + 20
            back = client.post("/v1/score", json=rows[160])
            while back.status_code == 503 and time.monotonic() < deadline:
                time.sleep(0.2)
                back = client.post("/v1/score", json=rows[160])
            assert back.status_code == 200, back.text
            acknowledged.append(rows[160]["transaction_id"])
    finally:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()
    logged = list(read_predictions(postgres_database)["transaction_id"])
    assert sorted(logged) == sorted(acknowledged)  # each acknowledged score once, no refused one
