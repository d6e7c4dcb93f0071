"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST

from serving.deps import ChampionDep, ServicesDep
from serving.errors import STATE_RETRY_AFTER_S, error_responses
from serving.schemas import StatusOut

router = APIRouter(prefix="/health", tags=["health"])
metrics_router = APIRouter(tags=["health"])
PROMETHEUS_TEXT = {
    "description": "Prometheus text format",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


@router.get("/live", response_model=StatusOut, response_model_exclude_none=True)
def check_live() -> StatusOut:
    """The process answers."""
    return StatusOut(status="alive")


READY_UNAVAILABLE = (
    "No model can serve, the prediction log fails or its backlog is at its bound, or the feature state "
    "(Redis) is out of reach or not loaded"
)


@router.get(
    "/ready", response_model=StatusOut, responses=error_responses(503, descriptions={503: READY_UNAVAILABLE})
)
async def check_ready(champion: ChampionDep, services: ServicesDep) -> StatusOut:
    """A smoke-tested model is loaded, the prediction log takes scores and the feature state answers
    (503 with the reason otherwise)."""
    reason = services.predictions.status().unavailable_reason
    if reason is not None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=reason)
    state = services.state
    reason = await run_in_threadpool(state.unavailable_reason) if state.remote else state.unavailable_reason()
    if reason is not None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"the online feature state is unavailable: {reason}",
            headers={"Retry-After": str(STATE_RETRY_AFTER_S)},
        )
    return StatusOut(status="ready", model_version=champion.info.version)


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={200: PROMETHEUS_TEXT},
)
def read_metrics(services: ServicesDep) -> Response:
    """Prometheus metrics in text format."""
    return Response(content=services.telemetry.render(), media_type=CONTENT_TYPE_LATEST)
