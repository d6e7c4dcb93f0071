"""Feedback: delayed labels are logged and change the terminal risk of later transactions."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from core.clock import set_today
from core.predlog import read_feedback
from tests.api.conftest import logged_predictions
from tests.api.factories import ADMIN_KEY, FEEDBACK_AUTH, FEEDBACK_KEY, transaction

if TYPE_CHECKING:
    from tests.api.conftest import Project

TERMINAL = 777_001  # outside the simulated population: no other transaction touches it


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": ""}, {"X-API-Key": "wrong"}, {"X-API-Key": ADMIN_KEY}])
def test_feedback_refuses_a_missing_wrong_or_admin_key(
    client: TestClient, project: Project, headers: dict[str, str]
) -> None:
    """Labels change features and what monitoring judges: only the feedback key may send them."""
    labels = [{"transaction_id": "fb-no-key", "tx_fraud": 1}]
    response = client.post("/v1/feedback", json={"labels": labels}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or wrong X-API-Key header"}
    assert "fb-no-key" not in set(read_feedback(project.settings().prediction_log)["transaction_id"])


def test_the_feedback_key_cannot_reload_models(client: TestClient) -> None:
    response = client.post("/admin/reload", headers={"X-API-Key": FEEDBACK_KEY})
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or wrong X-API-Key header"}


def received_on(db: Path, transaction_id: str) -> list[str]:
    """The days the feedback log filed the labels of ``transaction_id`` under."""
    with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT received_on FROM feedback WHERE transaction_id = ?", (transaction_id,))
        return [str(day) for (day,) in rows]


def test_feedback_is_accepted_and_logged_on_the_simulated_day(client: TestClient, project: Project) -> None:
    """A label is committed before its 200: read back at once through other connections, no flush."""
    settings = project.settings()
    set_today(settings.clock_file, dt.date(2026, 2, 3))
    try:
        labels = [{"transaction_id": "fb-log-1", "tx_fraud": 1, "tx_fraud_scenario": 2}]
        response = client.post("/v1/feedback", json={"labels": labels}, headers=FEEDBACK_AUTH)
    finally:
        settings.clock_file.unlink()
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1}
    assert received_on(settings.prediction_log, "fb-log-1") == ["2026-02-03"]
    row = read_feedback(settings.prediction_log).set_index("transaction_id").loc["fb-log-1"]
    assert (row["tx_fraud"], row["tx_fraud_scenario"]) == (1, 2)


def test_feedback_without_clock_is_filed_on_the_real_date(client: TestClient, project: Project) -> None:
    response = client.post(
        "/v1/feedback",
        json={"labels": [{"transaction_id": "fb-real-1", "tx_fraud": 0}]},
        headers=FEEDBACK_AUTH,
    )
    assert response.json() == {"accepted": 1}
    today = dt.datetime.now(dt.UTC).date()
    assert received_on(project.settings().prediction_log, "fb-real-1") == [today.isoformat()]


def test_fraud_label_raises_terminal_risk_of_later_transactions(client: TestClient, project: Project) -> None:
    """A fraud at a terminal counts in the risk of transactions more than the label delay later."""
    early = transaction("fb-early", "2026-01-22T10:00:00Z", customer=777_101, terminal=TERMINAL)
    late = transaction("fb-late", "2026-01-30T09:00:00Z", customer=777_102, terminal=TERMINAL)
    for body in (early, late):
        assert client.post("/v1/score", json=body).status_code == 200
    before = logged_predictions(client, ["fb-late"]).iloc[0]
    labels = [{"transaction_id": "fb-early", "tx_fraud": 1, "tx_fraud_scenario": 2}]
    assert client.post("/v1/feedback", json={"labels": labels}, headers=FEEDBACK_AUTH).json() == {
        "accepted": 1
    }
    # the same moment at the same terminal, by another card: the label now counts in its risk
    later = {**late, "transaction_id": "fb-late-2", "customer_id": 777_103}
    assert client.post("/v1/score", json=later).status_code == 200
    after = logged_predictions(client, ["fb-late-2"]).iloc[0]
    assert (before["f_terminal_nb_tx_1d"], before["f_terminal_risk_1d"]) == (1.0, 0.0)
    assert (after["f_terminal_nb_tx_1d"], after["f_terminal_risk_1d"]) == (1.0, 1.0)


def test_feedback_the_log_refuses_is_503_and_leaves_the_features_alone(
    client: TestClient, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels are logged before they are applied: while another writer holds the database, nothing changes."""
    terminal = TERMINAL + 1
    early = transaction("fb-locked-early", "2026-01-22T10:00:00Z", customer=777_201, terminal=terminal)
    late = transaction("fb-locked-late", "2026-01-30T09:00:00Z", customer=777_202, terminal=terminal)
    for body in (early, late):
        assert client.post("/v1/score", json=body).status_code == 200
    labels = {"labels": [{"transaction_id": "fb-locked-early", "tx_fraud": 1, "tx_fraud_scenario": 2}]}
    log = client.app.state.services.predictions.log  # type: ignore[attr-defined]
    monkeypatch.setattr(log, "busy_timeout_s", 0.05)
    log.close()  # reconnects with the short timeout
    with contextlib.closing(
        sqlite3.connect(project.settings().prediction_log, isolation_level=None)
    ) as other:
        other.execute("BEGIN IMMEDIATE")  # a real lock: SQLite answers "database is locked"
        response = client.post("/v1/feedback", json=labels, headers=FEEDBACK_AUTH)
        other.execute("ROLLBACK")
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert "database is locked" in response.json()["detail"]
    assert "fb-locked-early" not in set(read_feedback(project.settings().prediction_log)["transaction_id"])
    unchanged = {**late, "transaction_id": "fb-locked-late-2", "customer_id": 777_203}
    assert client.post("/v1/score", json=unchanged).status_code == 200
    assert logged_predictions(client, ["fb-locked-late-2"]).iloc[0]["f_terminal_risk_1d"] == 0.0
    assert client.post("/v1/feedback", json=labels, headers=FEEDBACK_AUTH).json() == {
        "accepted": 1
    }  # the retry applies it
    applied = {**late, "transaction_id": "fb-locked-late-3", "customer_id": 777_204}
    assert client.post("/v1/score", json=applied).status_code == 200
    assert logged_predictions(client, ["fb-locked-late-3"]).iloc[0]["f_terminal_risk_1d"] == 1.0
