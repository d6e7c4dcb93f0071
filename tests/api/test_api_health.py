"""Health, metadata and metrics; the prediction log's faults as the API answers them; and an app that
starts without any champion."""

from __future__ import annotations

import gc
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from core.features import feature_names
from core.predlog import read_predictions
from core.settings import Settings
from serving.app import create_app
from serving.model_store import NO_CHAMPION
from tests.api.conftest import logged_predictions
from tests.api.factories import ADMIN_KEY, FEEDBACK_KEY, REPO_PARAMS, THRESHOLD, transaction
from tests.unit.test_predlog import read_only_store, wait_until_failing

if TYPE_CHECKING:
    from tests.api.conftest import Project


@pytest.fixture(scope="module")
def empty_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app on a fresh project: params.yaml only, no data, no registry."""
    root = tmp_path_factory.mktemp("empty-project")
    shutil.copy(REPO_PARAMS, root / "params.yaml")
    settings = Settings(
        project_dir=root, admin_api_key=ADMIN_KEY, feedback_api_key=FEEDBACK_KEY, reload_interval_s=0
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_live_and_ready(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_version": "1"}


def test_what_start_up_built_is_left_out_of_the_collectors_full_walks(client: TestClient) -> None:
    """The warm feature state and the loaded model are frozen out of the garbage collector's
    generations: a full collection does not walk them (it used to stall a request up to 190 ms)."""
    services = client.app.state.services  # type: ignore[attr-defined]
    assert client.post("/v1/score", json=transaction("gc-1", "2026-01-22T09:00:00Z", 1, 1)).status_code == 200
    walked = {id(obj) for obj in gc.get_objects()}
    assert services.store.current is not None
    for built in (services.state, services.store.current, services.predictions):
        assert id(built) not in walked, f"{type(built).__name__} is still in the collector's generations"
    assert gc.get_freeze_count() > 100_000


def test_metadata_describes_the_champion(client: TestClient, project: Project) -> None:
    meta = client.get("/v1/metadata").json()
    assert meta["name"] == project.settings().model_name
    assert (meta["version"], meta["alias"]) == ("1", "champion")
    assert meta["data_version"] == "test-data-v1"
    assert meta["features"] == feature_names(project.params.features)
    assert meta["threshold"] == THRESHOLD
    assert meta["label_delay_days"] == project.params.data.label_delay_days


def test_metrics_count_requests_decisions_and_the_served_version(client: TestClient) -> None:
    client.post("/v1/score", json=transaction("metrics-1", "2026-01-22T10:00:00Z", 1, 1))
    text = client.get("/metrics").text
    assert 'fraudops_http_requests_total{method="POST",route="/v1/score",status="200"}' in text
    assert 'fraudops_http_request_duration_seconds_count{method="POST",route="/v1/score"}' in text
    assert 'fraudops_served_model_info{name="fraud-detector",version="1"} 1.0' in text
    assert "fraudops_decisions_total" in text
    assert "fraudops_model_reload_failures_total 0.0" in text


def test_metrics_show_the_prediction_log_backlog_and_its_bound(client: TestClient) -> None:
    client.app.state.services.predictions.flush()  # type: ignore[attr-defined]
    text = client.get("/metrics").text
    assert "fraudops_prediction_log_backlog_rows 0.0" in text
    assert "fraudops_prediction_log_backlog_limit_rows 200000.0" in text
    assert "fraudops_prediction_log_failing 0.0" in text
    assert "fraudops_prediction_log_failed_writes_total 0.0" in text
    assert "fraudops_prediction_log_last_error" not in text  # no error yet


def score(client: TestClient, tid: str) -> int:
    """Score one transaction of the replay day; returns the status code."""
    body = transaction(tid, "2026-01-22T11:00:00Z", customer=888_001, terminal=888_002)
    return client.post("/v1/score", json=body).status_code


def test_scoring_while_the_log_fails_is_503_and_nothing_acknowledged_is_lost(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only store (a full disk fails on the same path): no score is acknowledged while writes
    fail, the rows acknowledged before are written once the store recovers, and both are visible."""
    predictions = client.app.state.services.predictions  # type: ignore[attr-defined]
    monkeypatch.setattr(predictions, "retry_interval_s", 0.01)
    retried = transaction("outage-1", "2026-01-22T11:00:01Z", 1, 2)
    with read_only_store(predictions.log):
        assert score(client, "outage-0") == 200  # acknowledged before the failure is known
        wait_until_failing(predictions)
        refused = client.post("/v1/score", json=retried)
        batch = client.post(
            "/v1/score/batch", json={"transactions": [transaction("outage-2", "2026-01-22T11:00:02Z", 1, 2)]}
        )
        ready = client.get("/health/ready")
        metrics = client.get("/metrics").text
    assert (refused.status_code, batch.status_code) == (503, 503)
    assert refused.headers["Retry-After"] == "5"
    assert "attempt to write a readonly database" in refused.json()["detail"]
    assert ready.status_code == 503 and "the prediction log fails to write" in ready.json()["detail"]
    assert "fraudops_prediction_log_failing 1.0" in metrics
    assert "fraudops_prediction_log_backlog_rows 1.0" in metrics
    failed = re.search(r"^fraudops_prediction_log_failed_writes_total (\S+)$", metrics, re.M)
    assert failed and float(failed[1]) >= 1
    error = re.search(
        r'^fraudops_prediction_log_last_error_timestamp_seconds\{error="(.*)"\} (\S+)$', metrics, re.M
    )
    assert error and "attempt to write a readonly database" in error[1] and float(error[2]) > 1.7e9

    assert predictions.flush(timeout=10)  # the store takes writes again
    assert client.get("/health/ready").status_code == 200
    logged = set(read_predictions(predictions.log.path)["transaction_id"])
    assert "outage-0" in logged and not {"outage-1", "outage-2"} & logged  # refused: never acknowledged
    assert client.post("/v1/score", json=retried).status_code == 200  # what the client does after Retry-After
    assert logged_predictions(client, ["outage-1"])["transaction_id"].tolist() == ["outage-1"]


def test_ready_is_503_while_the_backlog_is_at_its_bound(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store slower than the traffic: the backlog reaches its bound, scoring is 503 and so is readiness."""
    predictions = client.app.state.services.predictions  # type: ignore[attr-defined]
    monkeypatch.setattr(predictions, "max_pending", 2)
    release = threading.Event()
    append = predictions.log.append_predictions

    def slow_append(batch: object) -> int:
        release.wait(timeout=30)
        return int(append(batch))

    monkeypatch.setattr(predictions.log, "append_predictions", slow_append)
    try:
        assert [score(client, "backlog-0"), score(client, "backlog-1")] == [200, 200]
        full = client.post("/v1/score", json=transaction("backlog-2", "2026-01-22T11:00:03Z", 1, 2))
        ready = client.get("/health/ready")
        metrics = client.get("/metrics").text
    finally:
        release.set()
    assert full.status_code == 503 and full.headers["Retry-After"] == "5"
    assert "2 rows wait to be written (limit 2)" in full.json()["detail"]
    assert ready.status_code == 503
    assert ready.json()["detail"] == "the prediction log backlog is at its bound: 2 rows wait (limit 2)"
    assert "fraudops_prediction_log_backlog_rows 2.0" in metrics
    assert "fraudops_prediction_log_backlog_limit_rows 2.0" in metrics
    assert predictions.flush(timeout=10)
    assert client.get("/health/ready").status_code == 200


def test_openapi_lists_the_contract_routes(client: TestClient) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {"/v1/score", "/v1/score/batch", "/v1/feedback", "/v1/metadata", "/admin/reload"} <= paths


def test_without_champion_scoring_and_ready_are_503(empty_client: TestClient) -> None:
    body = transaction("none-1", "2026-01-22T10:00:00Z", 1, 1)
    for response in (
        empty_client.post("/v1/score", json=body),
        empty_client.post("/v1/score/batch", json={"transactions": [body]}),
        empty_client.get("/v1/metadata"),
        empty_client.get("/health/ready"),
    ):
        assert response.status_code == 503
        assert response.json()["detail"] == NO_CHAMPION
    assert empty_client.get("/health/live").status_code == 200


def test_without_champion_reload_is_503_and_nothing_is_created(empty_client: TestClient) -> None:
    response = empty_client.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 503
    assert NO_CHAMPION in response.json()["detail"]
    root = Path(empty_client.app.state.services.settings.project_dir)
    assert not (root / "stores" / "mlflow").exists()


def test_create_app_does_nothing_before_startup(tmp_path: Path) -> None:
    create_app(Settings(project_dir=tmp_path / "absent", admin_api_key=ADMIN_KEY))
    assert not (tmp_path / "absent").exists()
