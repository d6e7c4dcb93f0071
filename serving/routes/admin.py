"""Operator endpoints, behind the ``X-API-Key`` header."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status

from serving.deps import ServicesDep, require_admin_key, require_json
from serving.errors import error_responses
from serving.model_store import ModelStoreError
from serving.schemas import ReloadOut

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin_key), Depends(require_json)],
    responses=error_responses(401, 415, 422),
)


@router.post(
    "/reload",
    response_model=ReloadOut,
    responses=error_responses(503, descriptions={503: "Reload failed: the old model keeps serving"}),
)
def reload_model(services: ServicesDep) -> ReloadOut:
    """Load the version now carrying the champion alias; on failure the old model keeps serving."""
    try:
        changed = services.store.reload()
    except ModelStoreError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    current = services.store.current
    return ReloadOut(changed=changed, version=current.info.version if current else None)
