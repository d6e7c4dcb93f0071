"""Error responses: a client's mistake is a 4xx that says what to fix, never a 500.

Every error body is an :class:`~serving.schemas.ErrorOut`; :func:`error_responses` declares the codes an
operation can answer in its OpenAPI ``responses``, so clients (and the schema tests) know them all.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from serving.schemas import ErrorOut, friendlier

ERROR_DESCRIPTIONS = {
    status.HTTP_400_BAD_REQUEST: "The body is not UTF-8",
    status.HTTP_401_UNAUTHORIZED: "Missing or wrong X-API-Key header",
    status.HTTP_413_CONTENT_TOO_LARGE: "Body over max_body_bytes or more rows than max_batch_rows: split the batch",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "The body is not sent as Content-Type: application/json",
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Invalid request: pydantic's per-field errors, or a sentence",
    status.HTTP_503_SERVICE_UNAVAILABLE: "No model can serve, or a store is out of reach: the detail says why",
}


def error_responses(
    *codes: int, descriptions: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for ``codes`` with the :class:`ErrorOut` body (``descriptions`` by code
    replace the standard ones)."""
    described = {**ERROR_DESCRIPTIONS, **(descriptions or {})}
    return {code: {"model": ErrorOut, "description": described[code]} for code in codes}


STATE_RETRY_AFTER_S = 2  # a Redis back, or a refill, is usually a matter of seconds


def log_unavailable(exc: Exception) -> HTTPException:
    """The 503 for a prediction or feedback log that cannot take rows now: nothing was applied, retry."""
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=f"{exc}: retry in a few seconds",
        headers={"Retry-After": "5"},
    )


def state_unavailable(exc: Exception) -> HTTPException:
    """The 503 for a feature state out of reach or not loaded (Redis): nothing was scored or applied."""
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=f"the online feature state is unavailable: {exc}. Nothing was scored or applied: retry "
        "after Retry-After seconds; if it lasts, check the Redis server FRAUDOPS_REDIS_URL names",
        headers={"Retry-After": str(STATE_RETRY_AFTER_S)},
    )


def make_json_safe(value: object) -> object:
    """``value`` with non-finite floats as text (JSON has no NaN; echoing one back would be a 500)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: make_json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [make_json_safe(item) for item in value]
    return value


async def explain_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with pydantic's per-field messages (location, message, offending input)."""
    errors = (
        [friendlier(e) for e in exc.errors()]
        if isinstance(exc, RequestValidationError)
        else [{"msg": str(exc)}]
    )
    content = {"detail": jsonable_encoder(make_json_safe(list(errors)))}
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content=content)


async def explain_http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer to an ``HTTPException``, with the reason when a body is not UTF-8.

    FastAPI answers a body it cannot decode with a bare "There was an error parsing the body"; the
    ``UnicodeDecodeError`` it chained says which byte is wrong.
    """
    if not isinstance(exc, HTTPException):  # registered for HTTPException only
        raise exc
    if exc.status_code == status.HTTP_400_BAD_REQUEST and isinstance(exc.__cause__, UnicodeDecodeError):
        detail = f"{exc.detail}: it is not UTF-8 ({exc.__cause__})"
        exc = HTTPException(exc.status_code, detail=detail, headers=exc.headers)
    return await http_exception_handler(request, exc)


def add_error_handlers(app: FastAPI) -> None:
    """Install the handlers above."""
    app.add_exception_handler(RequestValidationError, explain_validation_error)
    app.add_exception_handler(HTTPException, explain_http_error)
