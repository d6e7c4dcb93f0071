"""Bodies must be declared JSON: a web page can post ``text/plain`` to a local API without asking first."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from core.predlog import read_feedback, read_predictions
from tests.api.factories import ADMIN_KEY, FEEDBACK_AUTH, columns, transaction

if TYPE_CHECKING:
    from tests.api.conftest import Project

REFUSED = {"detail": "send the body as JSON with the header Content-Type: application/json"}


def bodies(tid: str) -> dict[str, Any]:
    """A valid body for each operation that takes one, about transaction ``tid``."""
    row = transaction(tid, "2026-01-22T10:00:00Z", customer=888_001, terminal=888_001)
    return {
        "/v1/score": row,
        "/v1/score/batch": {"transactions": [row]},
        "/v1/score/columns": columns([row]),
        "/v1/feedback": {"labels": [{"transaction_id": tid, "tx_fraud": 1}]},
    }


def logged_ids(client: TestClient, project: Project) -> set[str]:
    """Every transaction id in the prediction and feedback logs, once the app's writer flushed."""
    client.app.state.services.predictions.flush()  # type: ignore[attr-defined]
    db = project.settings().prediction_log
    frames = (read_predictions(db), read_feedback(db))
    return {tid for frame in frames if len(frame) for tid in frame["transaction_id"]}


@pytest.mark.parametrize("path", list(bodies("")))
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_not_declared_json_is_415_and_changes_nothing(
    client: TestClient, project: Project, path: str, content_type: str | None
) -> None:
    tid = f"ct-{path.rsplit('/', 1)[-1]}-{content_type}"
    headers = {**FEEDBACK_AUTH, "Content-Type": content_type} if content_type else FEEDBACK_AUTH
    response = client.post(path, content=json.dumps(bodies(tid)[path]), headers=headers)
    assert response.status_code == 415, response.text
    assert response.json() == REFUSED
    assert tid not in logged_ids(client, project)


@pytest.mark.parametrize("path", list(bodies("")))
def test_json_with_a_charset_is_accepted(client: TestClient, project: Project, path: str) -> None:
    tid = f"ct-charset-{path.rsplit('/', 1)[-1]}"
    headers = {**FEEDBACK_AUTH, "Content-Type": "application/json; charset=utf-8"}
    response = client.post(path, content=json.dumps(bodies(tid)[path]), headers=headers)
    assert response.status_code == 200, response.text
    assert tid in logged_ids(client, project)


def test_admin_refuses_a_text_body_and_takes_none(client: TestClient) -> None:
    auth = {"X-API-Key": ADMIN_KEY}
    response = client.post("/admin/reload", content="{}", headers={**auth, "Content-Type": "text/plain"})
    assert response.status_code == 415
    assert client.post("/admin/reload", headers=auth).status_code == 200
