"""Scoring endpoints: one transaction or a batch, raw fields in, verdicts out."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, status

from core.clock import ClockWatch
from core.predlog import PredictionLogError
from serving.deps import ChampionDep, Services, ServicesDep
from serving.errors import error_responses
from serving.model_store import LoadedModel
from serving.schemas import BatchIn, BatchOut, ScoreOut, TransactionIn
from serving.scoring import score_transactions

router = APIRouter(prefix="/v1", tags=["scoring"], responses=error_responses(400, 413, 422, 503))


def check_batch_size(rows: int, limit: int) -> None:
    """413 when a body holds more rows than the configured limit."""
    if rows > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"{rows} rows exceed the limit of {limit} per request: split the batch",
        )


def check_not_future(transactions: list[TransactionIn], clock: ClockWatch) -> None:
    """422 for a timestamp after tomorrow (the simulated clock's or the real one, whichever is later).

    The feature state keeps what any window can reach behind its newest transaction, so one
    far-future timestamp would age everything else out of it.
    """
    real = dt.datetime.now(dt.UTC).date()
    today = max(real, clock.today() or real)
    limit = dt.datetime.combine(today + dt.timedelta(days=2), dt.time(), tzinfo=dt.UTC)
    late = [t.transaction_id for t in transactions if t.tx_datetime >= limit]
    if late:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"tx_datetime of {', '.join(late[:5])} is after {limit.date()}: transactions from the "
            "future are refused (a simulated calendar moves with `fraudops clock set`)",
        )


def score_logged(
    services: Services, champion: LoadedModel, transactions: list[TransactionIn]
) -> list[ScoreOut]:
    """Score and log; 503 when the prediction log cannot take more rows (nothing is lost)."""
    try:
        return score_transactions(services, champion, transactions)
    except PredictionLogError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"{exc}: retry in a few seconds",
            headers={"Retry-After": "5"},
        ) from exc


@router.post("/score", response_model=ScoreOut)
async def score_one(transaction: TransactionIn, services: ServicesDep, champion: ChampionDep) -> ScoreOut:
    """Score one raw transaction (on the event loop: features and ONNX take tens of microseconds)."""
    check_not_future([transaction], services.clock)
    return score_logged(services, champion, [transaction])[0]


@router.post("/score/batch", response_model=BatchOut)
def score_batch(batch: BatchIn, services: ServicesDep, champion: ChampionDep) -> BatchOut:
    """Score a batch of raw transactions (verdicts in request order)."""
    check_batch_size(len(batch.transactions), services.settings.max_batch_rows)
    check_not_future(batch.transactions, services.clock)
    return BatchOut(predictions=score_logged(services, champion, batch.transactions))
