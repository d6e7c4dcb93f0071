"""Admin reload: API key, following the champion alias, and keeping the old model when a load fails.

These tests move the registry's champion alias; they put it back on version 1 when they finish.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

from core.registry import TAG_FEATURES, TAG_LABEL_DELAY, TAG_ONNX_SHA256
from serving.app import create_app
from tests.api.factories import ADMIN_KEY, transaction

if TYPE_CHECKING:
    from tests.api.conftest import Project

AUTH = {"X-API-Key": ADMIN_KEY}


@pytest.fixture(scope="module", autouse=True)
def restore_champion(project: Project) -> Iterator[None]:
    yield
    project.set_champion("1")


def _served_version(client: TestClient) -> str:
    return str(client.get("/v1/metadata").json()["version"])


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
def test_reload_refuses_a_missing_or_wrong_key(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/admin/reload", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or wrong X-API-Key header"}


def test_reload_without_change(client: TestClient) -> None:
    response = client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"changed": False, "version": "1"}


def test_reload_follows_the_champion_alias(client: TestClient, project: Project) -> None:
    version = project.register_version()
    project.set_champion(version)
    response = client.post("/admin/reload", headers=AUTH)
    assert response.json() == {"changed": True, "version": version}
    assert _served_version(client) == version
    score = client.post("/v1/score", json=transaction("admin-1", "2026-01-22T10:00:00Z", 1, 1)).json()
    assert score["model_version"] == version


@pytest.mark.parametrize(
    ("broken_tag", "reason"),
    [
        ({TAG_FEATURES: "not json"}, "JSONDecodeError"),
        ({TAG_FEATURES: json.dumps(["tx_amount", "no_such_feature"])}, "does not compute"),
        ({TAG_LABEL_DELAY: "3"}, "3-day label delay"),
        ({TAG_ONNX_SHA256: ""}, "has no fraudops.onnx_sha256 tag"),
        ({TAG_ONNX_SHA256: "0" * 64}, "the artifact changed after training"),
    ],
)
def test_failed_load_keeps_the_old_model(
    client: TestClient, project: Project, broken_tag: dict[str, str], reason: str
) -> None:
    serving = _served_version(client)
    failures = _reload_failures(client)
    broken = project.register_version({**project.version_tags(), **broken_tag})
    project.set_champion(broken)
    response = client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 503
    assert f"version {broken} cannot serve" in response.json()["detail"]
    assert reason in response.json()["detail"]
    assert _served_version(client) == serving
    assert client.get("/health/ready").status_code == 200
    assert _reload_failures(client) == failures + 1
    project.set_champion(serving)


def _reload_failures(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("fraudops_model_reload_failures_total "):
            return float(line.split()[1])
    raise AssertionError("reload failure counter missing from /metrics")


def test_background_poll_follows_the_alias(project: Project) -> None:
    with TestClient(create_app(project.settings(reload_interval_s=0.1))) as polling:
        before = _served_version(polling)
        version = project.register_version()
        project.set_champion(version)
        deadline = time.monotonic() + 10
        while _served_version(polling) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _served_version(polling) == version
