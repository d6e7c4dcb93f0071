"""Scoring endpoints: verdicts, the prediction log, and every input error a client can make."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from core.features import feature_names
from core.predlog import prediction_columns
from tests.api.conftest import logged_predictions
from tests.api.factories import FEEDBACK_AUTH, THRESHOLD, columns, transaction

if TYPE_CHECKING:
    from tests.api.conftest import Project

WHEN = "2026-01-22T10:15:00Z"  # the day after the simulated history


def test_score_one_returns_a_verdict(client: TestClient, project: Project) -> None:
    body = transaction("one-1", WHEN, customer=5, terminal=7, amount=80.0)
    response = client.post("/v1/score", json=body)
    assert response.status_code == 200, response.text
    score = response.json()
    assert set(score) == {"transaction_id", "fraud_probability", "is_fraud", "threshold", "model_version"}
    assert score["transaction_id"] == "one-1"
    assert 0.0 <= score["fraud_probability"] <= 1.0
    assert score["threshold"] == THRESHOLD
    assert score["is_fraud"] == (score["fraud_probability"] >= score["threshold"])
    assert score["model_version"] == "1"


def test_score_batch_answers_in_request_order(client: TestClient, project: Project) -> None:
    bodies = [transaction(f"batch-{i}", WHEN, 10 + i, 20 + i, 10.0 * i) for i in range(5)]
    bodies.reverse()
    response = client.post("/v1/score/batch", json={"transactions": bodies})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["transaction_id"] for p in predictions] == [b["transaction_id"] for b in bodies]
    assert all(0.0 <= p["fraud_probability"] <= 1.0 for p in predictions)


def test_columns_get_the_verdicts_and_features_of_rows(client: TestClient, project: Project) -> None:
    """The same transactions, by two customers and terminals of their own, once as rows and once as
    columns (ids and entities renamed): same probabilities, same logged features, answers as columns."""
    times = ["2026-01-22T09:00:00Z", "2026-01-22T10:30:00+01:00", "2026-01-22T09:40:00Z"]

    def bodies(tag: str, customer: int, terminal: int) -> list[dict[str, Any]]:
        return [
            transaction(f"{tag}-{i}", when, customer, terminal, 25.0 * (i + 1))
            for i, when in enumerate(times)
        ]

    as_rows, as_columns = bodies("rows", 200_001, 200_001), bodies("cols", 200_002, 200_002)
    by_rows = client.post("/v1/score/batch", json={"transactions": as_rows})
    by_columns = client.post("/v1/score/columns", json=columns(as_columns))
    assert by_rows.status_code == by_columns.status_code == 200, by_columns.text
    answer = by_columns.json()
    assert set(answer) == {"transaction_id", "fraud_probability", "is_fraud", "threshold", "model_version"}
    assert answer["transaction_id"] == [b["transaction_id"] for b in as_columns]
    assert answer["fraud_probability"] == [p["fraud_probability"] for p in by_rows.json()["predictions"]]
    assert answer["is_fraud"] == [p >= answer["threshold"] for p in answer["fraud_probability"]]
    assert (answer["threshold"], answer["model_version"]) == (THRESHOLD, "1")
    features = [f"f_{name}" for name in feature_names(project.params.features)]
    logged_rows = logged_predictions(client, [b["transaction_id"] for b in as_rows])
    logged_columns = logged_predictions(client, [b["transaction_id"] for b in as_columns])
    assert logged_rows[features].to_numpy().tolist() == logged_columns[features].to_numpy().tolist()
    assert logged_columns["f_customer_nb_tx_1d"].tolist() == [1.0, 2.0, 3.0]
    assert logged_columns["tx_datetime"].tolist() == logged_rows["tx_datetime"].tolist()


def test_a_large_amount_scores_higher_than_a_small_one(client: TestClient, project: Project) -> None:
    """Scenario 1 frauds are amounts above 220: the model must have learnt the direction."""
    small = transaction("dir-small", WHEN, 100_001, 100_001, 20.0)
    large = transaction("dir-large", WHEN, 100_002, 100_002, 900.0)
    response = client.post("/v1/score/batch", json={"transactions": [small, large]})
    low, high = (p["fraud_probability"] for p in response.json()["predictions"])
    assert high > low


def test_unseen_customer_and_terminal_get_an_empty_history(client: TestClient, project: Project) -> None:
    body = transaction("unseen-1", WHEN, customer=123_456, terminal=654_321, amount=30.0)
    assert client.post("/v1/score", json=body).status_code == 200
    row = logged_predictions(client, ["unseen-1"]).iloc[0]
    assert row["f_customer_nb_tx_1d"] == 1.0  # the transaction itself
    assert row["f_customer_avg_amount_30d"] == pytest.approx(30.0)
    assert row["f_terminal_nb_tx_30d"] == 0.0
    assert row["f_terminal_risk_30d"] == 0.0


def test_prediction_log_record_has_the_contract_columns(client: TestClient, project: Project) -> None:
    body = transaction("log-1", "2026-01-22T11:00:00+01:00", customer=3, terminal=4, amount=12.5)
    score = client.post("/v1/score", json=body).json()
    row = logged_predictions(client, ["log-1"]).iloc[0]
    assert list(row.index) == prediction_columns(feature_names(project.params.features))
    assert row["tx_datetime"].isoformat() == "2026-01-22T10:00:00+00:00"  # converted to UTC
    assert row["fraud_probability"] == pytest.approx(score["fraud_probability"])
    assert str(row["model_version"]) == "1"


def test_batch_over_the_limit_is_413(client: TestClient, project: Project) -> None:
    bodies = [transaction(f"big-{i}", WHEN, 1, 1) for i in range(501)]
    for path, body in (("/v1/score/batch", {"transactions": bodies}), ("/v1/score/columns", columns(bodies))):
        response = client.post(path, json=body)
        assert response.status_code == 413
        assert "limit of 500" in response.json()["detail"]


def _valid() -> dict[str, Any]:
    return transaction("bad-1", WHEN, 1, 2, 10.0)


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/v1/score", {**_valid(), "tx_amount": -1}, "greater than or equal to 0"),
        ("/v1/score", {**_valid(), "tx_amount": 1e9}, "less than or equal to"),
        ("/v1/score", {k: v for k, v in _valid().items() if k != "terminal_id"}, "Field required"),
        ("/v1/score", {**_valid(), "customer_id": "abc"}, "valid integer"),
        ("/v1/score", {**_valid(), "customer_id": -3}, "greater than or equal to 0"),
        ("/v1/score", {**_valid(), "transaction_id": ""}, "at least 1 character"),
        ("/v1/score", {**_valid(), "tx_datetime": "2026-01-22T10:15:00"}, "needs a timezone"),
        ("/v1/score", {**_valid(), "tx_datetime": "yesterday"}, "valid datetime"),
        ("/v1/score", {**_valid(), "tx_datetime": "1800-01-01T00:00:00Z"}, "must lie in"),
        ("/v1/score", {**_valid(), "f_terminal_risk_1d": 0.9}, "Extra inputs are not permitted"),
        ("/v1/score", [_valid()], "valid dictionary"),
        ("/v1/score/batch", {"transactions": []}, "at least 1 item"),
        ("/v1/score/batch", {"transactions": [_valid(), _valid()]}, "unique within a batch; repeated: bad-1"),
        ("/v1/score/batch", _valid(), "Field required"),
        (
            "/v1/score/columns",
            columns([_valid(), {**_valid(), "transaction_id": "bad-2"}]) | {"tx_amount": [1.0]},
            "lengths: transaction_id 2, tx_datetime 2, customer_id 2, terminal_id 2, tx_amount 1",
        ),
        ("/v1/score/columns", columns([_valid(), _valid()]), "unique within a batch; repeated: bad-1"),
        (
            "/v1/score/columns",
            columns([{**_valid(), "tx_datetime": "2026-01-22T10:15:00"}]),
            "needs a timezone",
        ),
        ("/v1/score/columns", columns([{**_valid(), "tx_datetime": "1800-01-01T00:00:00Z"}]), "must lie in"),
        ("/v1/score/columns", columns([{**_valid(), "customer_id": -3}]), "greater than or equal to 0"),
        ("/v1/score/columns", {"transaction_id": []}, "Field required"),
        (
            "/v1/score/columns",
            {**columns([_valid()]), "f_terminal_risk_1d": [0.9]},
            "Extra inputs are not permitted",
        ),
        ("/v1/feedback", {"labels": [{"transaction_id": "x", "tx_fraud": 2}]}, "less than or equal to 1"),
        ("/v1/feedback", {"labels": []}, "at least 1 item"),
    ],
)
def test_invalid_bodies_are_422_with_a_message(
    client: TestClient, path: str, body: object, expected: str
) -> None:
    response = client.post(path, json=body, headers=FEEDBACK_AUTH)
    assert response.status_code == 422, response.text
    assert expected in response.text


@pytest.mark.parametrize("raw", [b'{"transaction_id": "x", ', b"", b"not json", b'{"tx_amount": NaN}'])
def test_malformed_json_is_422(client: TestClient, raw: bytes) -> None:
    response = client.post("/v1/score", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text


def test_non_finite_amount_is_422(client: TestClient) -> None:
    raw = b'{"transaction_id": "nan-1", "tx_datetime": "2026-01-22T10:15:00Z", "customer_id": 1, "terminal_id": 2, "tx_amount": NaN}'
    response = client.post("/v1/score", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert "tx_amount" in response.text


def test_a_transaction_from_the_future_is_422_and_leaves_the_state_alone(
    client: TestClient, project: Project
) -> None:
    state = client.app.state.services.state  # type: ignore[attr-defined]
    before = state.rows
    body = transaction("future-1", "2099-01-01T00:00:00Z", customer=5, terminal=7, amount=10.0)
    for path, payload in (
        ("/v1/score", body),
        ("/v1/score/batch", {"transactions": [body]}),
        ("/v1/score/columns", columns([body])),
    ):
        response = client.post(path, json=payload)
        assert response.status_code == 422, response.text
        assert (
            "future-1" in response.json()["detail"]
            and "from the future are refused" in response.json()["detail"]
        )
    assert state.rows == before
    ok = client.post("/v1/score", json=transaction("after-future", WHEN, customer=5, terminal=7, amount=10.0))
    assert ok.status_code == 200
