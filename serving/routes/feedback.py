"""Delayed fraud labels: they feed terminal risk features and the performance monitor."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from serving.deps import ServicesDep, require_json
from serving.errors import error_responses
from serving.routes.scoring import check_batch_size
from serving.schemas import FeedbackIn, FeedbackOut
from serving.scoring import record_feedback

router = APIRouter(prefix="/v1", tags=["feedback"], dependencies=[Depends(require_json)])


@router.post("/feedback", response_model=FeedbackOut, responses=error_responses(400, 413, 415, 422))
def create_feedback(feedback: FeedbackIn, services: ServicesDep) -> FeedbackOut:
    """Record fraud labels of transactions scored earlier."""
    check_batch_size(len(feedback.labels), services.settings.max_batch_rows)
    return FeedbackOut(accepted=record_feedback(services, feedback.labels))
