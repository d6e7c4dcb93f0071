"""Error responses: a client's mistake is a 4xx that says what to fix, never a 500."""

from __future__ import annotations

import math

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


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
    errors = exc.errors() if isinstance(exc, RequestValidationError) else [{"msg": str(exc)}]
    content = {"detail": jsonable_encoder(make_json_safe(list(errors)))}
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content=content)


def add_error_handlers(app: FastAPI) -> None:
    """Install the handlers above."""
    app.add_exception_handler(RequestValidationError, explain_validation_error)
