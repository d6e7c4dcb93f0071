"""Scoring endpoints: one transaction or a batch, raw fields in, verdicts out."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from serving.deps import ChampionDep, ServicesDep
from serving.schemas import BatchIn, BatchOut, ScoreOut, TransactionIn
from serving.scoring import score_transactions

router = APIRouter(prefix="/v1", tags=["scoring"])


def check_batch_size(rows: int, limit: int) -> None:
    """413 when a body holds more rows than the configured limit."""
    if rows > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"{rows} rows exceed the limit of {limit} per request: split the batch",
        )


@router.post("/score", response_model=ScoreOut)
def score_one(transaction: TransactionIn, services: ServicesDep, champion: ChampionDep) -> ScoreOut:
    """Score one raw transaction."""
    return score_transactions(services, champion, [transaction])[0]


@router.post("/score/batch", response_model=BatchOut)
def score_batch(batch: BatchIn, services: ServicesDep, champion: ChampionDep) -> BatchOut:
    """Score a batch of raw transactions (verdicts in request order)."""
    check_batch_size(len(batch.transactions), services.settings.max_batch_rows)
    return BatchOut(predictions=score_transactions(services, champion, batch.transactions))
