"""One rule per conflict, on the scoring and feedback paths alike.

The same transaction (or label) sent again is idempotent: it gets its stored verdict back and is
recorded once. A different transaction under a used id, or a different label for a labelled
transaction, is refused with 409 and changes nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from core.features import compute_features, feature_names
from core.predlog import read_feedback
from tests.api.conftest import logged_predictions
from tests.api.factories import ADMIN_KEY, FEEDBACK_AUTH, bodies, columns, transaction

if TYPE_CHECKING:
    from tests.api.conftest import Project

CUSTOMER = 888_001
TERMINAL = 888_501


def times_logged(client: TestClient, tid: str) -> int:
    """How many records of ``tid`` the prediction log holds (every batch, not only the newest)."""
    services = client.app.state.services  # type: ignore[attr-defined]
    services.predictions.flush()
    with contextlib.closing(sqlite3.connect(services.settings.prediction_log)) as conn:
        blobs = [blob for (blob,) in conn.execute("SELECT arrow FROM batches")]
    return sum(pa.ipc.open_stream(b).read_all()["transaction_id"].to_pylist().count(tid) for b in blobs)


def labels_logged(client: TestClient, tid: str) -> int:
    services = client.app.state.services  # type: ignore[attr-defined]
    with contextlib.closing(sqlite3.connect(services.settings.prediction_log)) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM feedback WHERE transaction_id = ?", (tid,)).fetchone()
    return int(count)


def score(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/v1/score", json=body)


def test_the_same_transaction_sent_again_gets_its_stored_verdict(client: TestClient) -> None:
    first = transaction("cf-same", "2026-01-22T10:00:00.250Z", CUSTOMER, TERMINAL, 12.5)
    answer = score(client, first)
    assert answer.status_code == 200, answer.text
    again = score(client, first)
    assert again.status_code == 200, again.text
    assert again.json() == answer.json()
    batch = client.post("/v1/score/batch", json={"transactions": [first]})
    assert batch.json() == {"predictions": [answer.json()]}
    assert times_logged(client, "cf-same") == 1
    # counted once in the card's windows: a later transaction sees it and itself
    later = transaction("cf-same-later", "2026-01-22T11:00:00Z", CUSTOMER, TERMINAL, 7.5)
    assert score(client, later).status_code == 200
    assert logged_predictions(client, ["cf-same-later"]).iloc[0]["f_customer_nb_tx_1d"] == 2.0


@pytest.mark.parametrize(
    "change",
    [
        {"tx_amount": 12.51},
        {"tx_datetime": "2026-01-23T10:00:00.250Z"},
        {"tx_datetime": "2026-01-22T10:00:00.251Z"},  # the same second: still another transaction
        {"customer_id": CUSTOMER + 1},
        {"terminal_id": TERMINAL + 1},
    ],
)
def test_another_transaction_under_a_used_id_is_409_and_changes_nothing(
    client: TestClient, change: dict[str, Any]
) -> None:
    tid = f"cf-used-{sorted(change.items())}"
    body = transaction(tid, "2026-01-22T10:00:00.250Z", CUSTOMER + 10, TERMINAL + 10, 12.5)
    assert score(client, body).status_code == 200
    fresh = transaction(f"{tid}-fresh", "2026-01-22T12:00:00Z", CUSTOMER + 10, TERMINAL + 10, 3.0)
    for request in (
        lambda: score(client, {**body, **change}),
        lambda: client.post("/v1/score/batch", json={"transactions": [fresh, {**body, **change}]}),
        lambda: client.post("/v1/score/columns", json=columns([fresh, {**body, **change}])),
    ):
        response = request()
        assert response.status_code == 409, response.text
        assert tid in response.json()["detail"] and "use new ids" in response.json()["detail"]
    assert times_logged(client, tid) == 1
    assert times_logged(client, fresh["transaction_id"]) == 0  # the whole request was refused


def test_a_resubmission_keeps_the_verdict_of_the_model_that_gave_it(
    client: TestClient, project: Project
) -> None:
    old = transaction("cf-old-model", "2026-01-22T10:00:00Z", CUSTOMER + 30, TERMINAL + 30, 50.0)
    first = score(client, old).json()
    version = project.register_version()
    project.set_champion(version)
    try:
        assert client.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY}).json()["version"] == version
        new = transaction("cf-new-model", "2026-01-22T10:05:00Z", CUSTOMER + 31, TERMINAL + 31, 50.0)
        rows = client.post("/v1/score/batch", json={"transactions": [old, new]}).json()["predictions"]
        assert [row["model_version"] for row in rows] == [first["model_version"], version]
        assert rows[0] == first
        answer = client.post("/v1/score/columns", json=columns([old, new])).json()
        assert answer["model_version"] == [first["model_version"], version]
        assert answer["fraud_probability"] == [row["fraud_probability"] for row in rows]
    finally:
        project.set_champion("1")
        client.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY})


def test_an_ingested_transaction_scored_once_has_its_offline_features(
    client: TestClient, project: Project
) -> None:
    history = project.history.sort_values("tx_datetime", kind="stable").reset_index(drop=True)
    ingested = history.tail(3)
    response = client.post("/v1/score/batch", json={"transactions": bodies(ingested)})
    assert response.status_code == 200, response.text
    ids = ingested["transaction_id"].tolist()
    logged = logged_predictions(client, ids)
    params = project.params
    names = feature_names(params.features)
    offline = compute_features(
        history, history["tx_fraud"].to_numpy(), params.features, params.data.label_delay_days
    ).tail(3)
    gap = np.abs(logged[[f"f_{n}" for n in names]].to_numpy() - offline[names].to_numpy(dtype=np.float64))
    assert gap.max() <= 1e-9
    changed = {**bodies(ingested.head(1))[0], "tx_amount": float(ingested["tx_amount"].iloc[0]) + 1}
    assert score(client, changed).status_code == 409


def test_the_same_label_again_is_recorded_once(client: TestClient) -> None:
    label = {"transaction_id": "cf-label-same", "tx_fraud": 1, "tx_fraud_scenario": 2}
    for _ in range(2):
        response = client.post("/v1/feedback", json={"labels": [label, label]}, headers=FEEDBACK_AUTH)
        assert response.json() == {"accepted": 1}, response.text
    assert labels_logged(client, "cf-label-same") == 1


def test_a_different_label_for_a_labelled_transaction_is_409(client: TestClient, project: Project) -> None:
    first = {"transaction_id": "cf-label-other", "tx_fraud": 1}
    assert client.post("/v1/feedback", json={"labels": [first]}, headers=FEEDBACK_AUTH).status_code == 200
    news = {"transaction_id": "cf-label-news", "tx_fraud": 0}
    response = client.post(
        "/v1/feedback", json={"labels": [news, {**first, "tx_fraud": 0}]}, headers=FEEDBACK_AUTH
    )
    assert response.status_code == 409, response.text
    assert "cf-label-other" in response.json()["detail"]
    assert labels_logged(client, "cf-label-news") == 0  # nothing of the request was applied
    labels = read_feedback(project.settings().prediction_log).set_index("transaction_id")
    assert labels.loc["cf-label-other", "tx_fraud"] == 1
    # an ingested label counts as recorded: flipping it is a conflict too
    row = project.history.iloc[-1]
    flipped = {"transaction_id": row["transaction_id"], "tx_fraud": 1 - int(row["tx_fraud"])}
    response = client.post("/v1/feedback", json={"labels": [flipped]}, headers=FEEDBACK_AUTH)
    assert response.status_code == 409, response.text
    same = {"transaction_id": row["transaction_id"], "tx_fraud": int(row["tx_fraud"])}
    assert client.post("/v1/feedback", json={"labels": [same]}, headers=FEEDBACK_AUTH).json() == {
        "accepted": 1
    }
    assert labels_logged(client, str(row["transaction_id"])) == 0  # known already: nothing to log


def test_a_label_feed_without_scenarios_records_none(client: TestClient, project: Project) -> None:
    """Real label feeds know fraud, not the simulator's scenarios: none is recorded, not "genuine" (0)."""
    label = {"transaction_id": "cf-label-feed", "tx_fraud": 1}
    assert client.post("/v1/feedback", json={"labels": [label]}, headers=FEEDBACK_AUTH).json() == {
        "accepted": 1
    }
    row = read_feedback(project.settings().prediction_log).set_index("transaction_id").loc["cf-label-feed"]
    assert row["tx_fraud"] == 1 and np.isnan(row["tx_fraud_scenario"])
