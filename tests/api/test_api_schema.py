"""Property-based tests of the API contract: schemathesis sends valid and invalid requests to every
operation of the running app's OpenAPI schema and checks each answer.

No request may end in a 5xx (the app serves a champion, so not even a 503), every status code must be
declared for its operation, and every body and content type must match the schema. Admin and feedback
operations run twice: with generated (wrong or missing) keys, and with their right one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from serving.app import create_app
from tests.api.factories import ADMIN_KEY, FEEDBACK_KEY, transaction

if TYPE_CHECKING:
    from tests.api.conftest import Project

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Deterministic (fixed seed, derandomized, no example database); per operation, the schema's examples,
# the coverage phase's boundary and invalid cases, and 30 fuzzed cases, valid and invalid.
CONFIG: dict[str, Any] = {
    "seed": 20260122,
    "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
    "generation": {"mode": "all", "max-examples": 30, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
}


# The schema as create_app builds it (no settings needed, nothing started): pytest needs the operations
# at collection time, before the session project exists. `running_app` checks the app serves the same.
SCHEMA = schemathesis.openapi.from_dict(create_app().openapi(), config=schemathesis.Config.from_dict(CONFIG))


@pytest.fixture(scope="module")
def running_app(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An app on a copy of the session project, its lifespan run by schemathesis until the module ends.

    The copy keeps generated predictions and labels out of the prediction log other modules read.
    """
    root = tmp_path_factory.mktemp("schema-project") / "project"
    shutil.copytree(project.dir, root, ignore=shutil.ignore_patterns("predictions.db*"))
    app = create_app(project.settings(project_dir=root))
    served = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the lifespan
    assert served.raw_schema == SCHEMA.raw_schema
    yield app
    asgi.shutdown_lifespans()


def test_every_error_answer_is_declared_with_the_error_model() -> None:
    error_out = {"$ref": "#/components/schemas/ErrorOut"}
    declared = {}
    for path, operations in SCHEMA.raw_schema["paths"].items():
        for method, operation in operations.items():
            errors = {code: r for code, r in operation["responses"].items() if not code.startswith("2")}
            assert all(r["content"]["application/json"]["schema"] == error_out for r in errors.values())
            declared[f"{method.upper()} {path}"] = sorted(errors)
    assert declared == {
        "POST /v1/score": ["400", "409", "413", "415", "422", "503"],
        "POST /v1/score/batch": ["400", "409", "413", "415", "422", "503"],
        "POST /v1/score/columns": ["400", "409", "413", "415", "422", "503"],
        "POST /v1/feedback": ["400", "401", "409", "413", "415", "422", "503"],
        "GET /v1/metadata": ["503"],
        "GET /health/live": [],
        "GET /health/ready": ["503"],
        "GET /metrics": [],
        "POST /admin/reload": ["401", "415", "422", "503"],
    }


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01"])
def test_a_timestamp_that_overflows_in_utc_is_a_422(client: TestClient, when: str) -> None:
    """Found by a long schemathesis run: converting these to UTC overflowed into a 500."""
    response = client.post("/v1/score", json=transaction("edge-1", when, 1, 1))
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"].endswith("tx_datetime must lie in [2000-01-01, 2100-01-01)")


@SCHEMA.parametrize()
def test_every_operation_keeps_its_contract(case: schemathesis.Case, running_app: Any) -> None:
    case.call_and_validate(app=running_app, checks=CHECKS)


@SCHEMA.include(tag="admin").parametrize()
def test_admin_operations_keep_their_contract_with_the_key(case: schemathesis.Case, running_app: Any) -> None:
    case.call_and_validate(app=running_app, headers={"X-API-Key": ADMIN_KEY}, checks=CHECKS)


@SCHEMA.include(tag="feedback").parametrize()
def test_feedback_operations_keep_their_contract_with_the_key(
    case: schemathesis.Case, running_app: Any
) -> None:
    case.call_and_validate(app=running_app, headers={"X-API-Key": FEEDBACK_KEY}, checks=CHECKS)
