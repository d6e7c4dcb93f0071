"""Request bodies: the size limit (by Content-Length before reading, or while a chunked body streams),
and a body that cannot be read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from serving.app import create_app
from tests.api.conftest import fresh_prediction_log
from tests.api.factories import transaction

if TYPE_CHECKING:
    from tests.api.conftest import Project

LIMIT = 2048
WHEN = "2026-01-22T10:15:00Z"
JSON = {"content-type": "application/json"}
TOO_LARGE = f"exceed the limit of {LIMIT} bytes per request body: split the batch"


@pytest.fixture(scope="module")
def small(project: Project) -> Iterator[TestClient]:
    """An app whose body limit is a dozen transactions."""
    fresh_prediction_log(project.settings())
    with TestClient(create_app(project.settings(max_body_bytes=LIMIT))) as test_client:
        yield test_client


def batch_body(n: int, prefix: str, size: int | None = None) -> bytes:
    """A batch of ``n`` transactions as JSON, padded with trailing spaces to ``size`` bytes."""
    rows = [transaction(f"{prefix}-{i}", WHEN, 1_000 + i, 2_000 + i) for i in range(n)]
    body = json.dumps({"transactions": rows}).encode()
    return body if size is None else body.ljust(size)


def test_default_limit_fits_a_full_batch_of_the_largest_transactions() -> None:
    defaults = Settings.model_fields
    rows = defaults["max_batch_rows"].default
    worst = transaction("X" * 64, "2026-01-22T10:15:00.123456+01:00", 90_000_000, 90_000_000, 9_999_999.99)
    pretty = json.dumps({"transactions": [worst] * rows}, indent=4).encode()
    assert len(pretty) < 0.75 * defaults["max_body_bytes"].default


def test_a_body_within_the_limit_is_scored(small: TestClient) -> None:
    body = batch_body(3, "within", size=LIMIT)
    response = small.post("/v1/score/batch", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 3


def test_content_length_over_the_limit_is_refused_unread(small: TestClient) -> None:
    body = batch_body(3, "over", size=LIMIT + 1)
    response = small.post("/v1/score/batch", content=body, headers=JSON)
    assert response.status_code == 413
    assert response.json() == {"detail": f"{LIMIT + 1} bytes {TOO_LARGE}"}
    assert 'route="unmatched",status="413"' in small.get("/metrics").text


def test_a_chunked_body_over_the_limit_is_refused(small: TestClient) -> None:
    body = batch_body(30, "chunked")
    chunks = (body[i : i + 500] for i in range(0, len(body), 500))
    response = small.post("/v1/score/batch", content=chunks, headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["detail"].endswith(f"bytes read so far {TOO_LARGE}")


def test_a_long_chunked_body_is_cut_off_at_the_limit(small: TestClient) -> None:
    """Driven through ASGI directly so the body really arrives in chunks, one ``receive`` each."""
    status, detail, pulled = asyncio.run(post_chunks(small.app, "/v1/feedback", [b" " * 1000] * 100))
    assert status == 413
    assert detail == f"3000 bytes read so far {TOO_LARGE}"
    assert pulled == 3


def test_a_body_that_is_not_utf8_gets_a_400_that_says_so(small: TestClient) -> None:
    response = small.post("/v1/score", content=b'{"transaction_id": "\xff"}', headers=JSON)
    assert response.status_code == 400
    assert response.json() == {
        "detail": "There was an error parsing the body: it is not UTF-8 ('utf-8' codec can't decode "
        "byte 0xff in position 20: invalid start byte)"
    }


async def post_chunks(app: Any, path: str, chunks: list[bytes]) -> tuple[int, str, int]:
    """POST ``chunks`` without Content-Length; the status, the detail and how many chunks the app read."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)["detail"], pulled
