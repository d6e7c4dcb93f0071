"""Delayed fraud labels: they feed terminal risk features and the performance monitor, so only holders of
the feedback key (``X-API-Key``) may send them."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status

from core.online import FeatureStateError
from core.predlog import PredictionLogError
from serving.deps import ServicesDep, require_feedback_key, require_json
from serving.errors import error_responses, log_unavailable, state_unavailable
from serving.routes.scoring import check_batch_size
from serving.schemas import FeedbackIn, FeedbackOut
from serving.scoring import ConflictError, record_feedback

router = APIRouter(
    prefix="/v1", tags=["feedback"], dependencies=[Depends(require_feedback_key), Depends(require_json)]
)


FEEDBACK_UNAVAILABLE = (
    "The feedback log or the feature state (Redis) cannot take labels now: retry after Retry-After "
    "(labels already recorded are not applied twice)"
)
RELABELLED_DESCRIPTION = (
    "A transaction is labelled differently already: nothing was applied. The same label sent again "
    "is not a conflict (it is recorded once)"
)


@router.post(
    "/feedback",
    response_model=FeedbackOut,
    responses=error_responses(
        *(400, 401, 409, 413, 415, 422, 503),
        descriptions={409: RELABELLED_DESCRIPTION, 503: FEEDBACK_UNAVAILABLE},
    ),
)
def create_feedback(feedback: FeedbackIn, services: ServicesDep) -> FeedbackOut:
    """Record fraud labels of transactions scored earlier (logged first, then applied to the features);
    a label sent again is recorded once, a different label for a labelled transaction is a 409."""
    check_batch_size(len(feedback.labels), services.settings.max_batch_rows)
    try:
        return FeedbackOut(accepted=record_feedback(services, feedback.labels))
    except PredictionLogError as exc:
        raise log_unavailable(exc) from exc
    except FeatureStateError as exc:
        raise state_unavailable(exc) from exc
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
