"""Health, metadata and metrics; and an app that starts without any champion."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from core.features import feature_names
from core.settings import Settings
from serving.app import create_app
from serving.model_store import NO_CHAMPION
from tests.api.factories import ADMIN_KEY, FEEDBACK_KEY, REPO_PARAMS, THRESHOLD, transaction

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
