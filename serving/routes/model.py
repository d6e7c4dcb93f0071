"""What is being served."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import ChampionDep
from serving.errors import error_responses
from serving.schemas import MetadataOut

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/metadata", response_model=MetadataOut, responses=error_responses(503))
def read_metadata(champion: ChampionDep) -> MetadataOut:
    """Name, version, alias, training data version, features and threshold of the served model."""
    info = champion.info
    return MetadataOut(
        name=info.name,
        version=info.version,
        alias=info.alias,
        run_id=info.run_id,
        data_version=info.data_version,
        features=info.features,
        threshold=info.threshold,
        label_delay_days=info.label_delay_days,
    )
