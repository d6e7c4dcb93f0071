"""Scoring endpoints: one transaction or a batch, raw fields in, verdicts out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from core.clock import ClockWatch
from core.online import FeatureStateError
from core.predlog import PredictionLogError
from serving.deps import ChampionDep, Services, ServicesDep, require_json
from serving.errors import error_responses, log_unavailable, state_unavailable
from serving.model_store import LoadedModel
from serving.schemas import BatchIn, BatchOut, ColumnsIn, ColumnsOut, ScoreOut, TransactionIn
from serving.scoring import (
    EPOCH,
    ONE_MICROSECOND,
    ConflictError,
    Transactions,
    Verdicts,
    json_response,
    score_transactions,
)

Body = TypeVar("Body", bound=BaseModel)
USED_ID_DESCRIPTION = (
    "A transaction id already names a different transaction: nothing was scored. The same transaction "
    "sent again is not a conflict: it gets its stored verdict back"
)

router = APIRouter(
    prefix="/v1",
    tags=["scoring"],
    dependencies=[Depends(require_json)],
    responses=error_responses(400, 409, 413, 415, 422, 503, descriptions={409: USED_ID_DESCRIPTION}),
)


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema for an OpenAPI request body, its nested models referenced in components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)  # TransactionIn is in the components already (POST /v1/score's body)
    return schema


def body_of(model: type[Body]) -> Callable[[Request], Awaitable[Body]]:
    """A dependency reading ``model`` validated by pydantic straight from the body's bytes.

    FastAPI would decode the JSON into Python objects first and validate those, three times slower for
    a batch of 1,000 rows. Errors keep FastAPI's form: a 400 for a body that is not UTF-8, a 422 with
    pydantic's per-field errors located under ``body``.
    """

    async def read(request: Request) -> Body:
        body = await request.body()
        try:
            text = body.decode()
        except UnicodeDecodeError as exc:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail=f"There was an error parsing the body: it is not UTF-8 ({exc})",
            ) from exc
        try:
            return model.model_validate_json(text)
        except ValidationError as exc:
            errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
            raise RequestValidationError(errors) from exc

    return read


def body_spec(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring the request body a :func:`body_of` dependency reads."""
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": inline_schema(model)}}}
    }


BatchDep = Annotated[BatchIn, Depends(body_of(BatchIn))]
ColumnsDep = Annotated[ColumnsIn, Depends(body_of(ColumnsIn))]


def check_batch_size(rows: int, limit: int) -> None:
    """413 when a body holds more rows than the configured limit."""
    if rows > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"{rows} rows exceed the limit of {limit} per request: split the batch",
        )


def check_not_future(tx: Transactions, clock: ClockWatch) -> None:
    """422 for a timestamp after tomorrow (the simulated clock's or the real one, whichever is later).

    The feature state keeps what any window can reach behind its newest transaction, so one
    far-future timestamp would age everything else out of it.
    """
    real = dt.datetime.now(dt.UTC).date()
    today = max(real, clock.today() or real)
    limit = dt.datetime.combine(today + dt.timedelta(days=2), dt.time(), tzinfo=dt.UTC)
    late = np.flatnonzero(tx.micros >= (limit - EPOCH) // ONE_MICROSECOND)
    if len(late):
        ids = ", ".join(tx.ids[i] for i in late[:5])
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"tx_datetime of {ids} is after {limit.date()}: transactions from the "
            "future are refused (a simulated calendar moves with `fraudops clock set`)",
        )


def score_checked(services: Services, champion: LoadedModel, tx: Transactions) -> Verdicts:
    """Refuse batches over the limit and future timestamps, then score and log; 409 when an id names
    another transaction already (nothing is applied); 503 when the prediction log cannot take more
    rows (nothing is lost) or the feature state is out of reach (nothing is scored)."""
    check_batch_size(len(tx), services.settings.max_batch_rows)
    check_not_future(tx, services.clock)
    try:
        return score_transactions(services, champion, tx)
    except PredictionLogError as exc:
        raise log_unavailable(exc) from exc
    except FeatureStateError as exc:
        raise state_unavailable(exc) from exc
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"{exc}: use new ids") from exc


async def score_off_loop(services: Services, champion: LoadedModel, tx: Transactions) -> Verdicts:
    """:func:`score_checked`, on the event loop for a state in this process (tens of microseconds), in a
    worker thread for one in Redis: a Redis slow to answer must not stall every other request."""
    if services.state.remote:
        return await run_in_threadpool(score_checked, services, champion, tx)
    return score_checked(services, champion, tx)


@router.post("/score", response_model=ScoreOut)
async def score_one(transaction: TransactionIn, services: ServicesDep, champion: ChampionDep) -> Response:
    """Score one raw transaction (on the event loop: features and ONNX take tens of microseconds)."""
    verdicts = await score_off_loop(services, champion, Transactions.from_rows([transaction]))
    return json_response(verdicts.rows()[0])


@router.post("/score/batch", response_model=BatchOut, openapi_extra=body_spec(BatchIn))
async def score_batch(batch: BatchDep, services: ServicesDep, champion: ChampionDep) -> Response:
    """Score a batch of raw transactions (verdicts in request order)."""
    verdicts = await score_off_loop(services, champion, Transactions.from_rows(batch.transactions))
    return json_response({"predictions": verdicts.rows()})


@router.post("/score/columns", response_model=ColumnsOut, openapi_extra=body_spec(ColumnsIn))
async def score_columns(columns: ColumnsDep, services: ServicesDep, champion: ChampionDep) -> Response:
    """Score a batch sent as columns, answered as columns (the same verdicts as ``/score/batch``,
    for less work on both sides: one list per field instead of an object per transaction)."""
    verdicts = await score_off_loop(services, champion, Transactions.from_columns(columns))
    return json_response(verdicts.columns())
