"""Request dependencies as ``Annotated`` aliases: the app's services, the champion, the API keys, and
the JSON content type of request bodies.

They are ``async def`` because they do not block: FastAPI runs a plain ``def`` dependency in a thread.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Header, HTTPException, Request, status

from core.clock import ClockWatch
from core.online import FeatureState
from core.params import Params
from core.predlog import PredictionWriter
from core.settings import ApiKey, Settings
from serving.model_store import LoadedModel, ModelStore
from serving.shared_state import StateKeeper
from serving.telemetry import Telemetry


@dataclass
class Services:
    """What the lifespan builds once and every request uses."""

    settings: Settings
    params: Params
    state: FeatureState
    store: ModelStore
    telemetry: Telemetry
    predictions: PredictionWriter
    clock: ClockWatch
    keeper: StateKeeper | None = None  # keeps a state in Redis filled (None: the state is in-process)


async def get_services(request: Request) -> Services:
    """The services of the app serving this request."""
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_champion(services: ServicesDep) -> LoadedModel:
    """The model serving now; 503 with the reason when there is none."""
    current = services.store.current
    if current is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=services.store.unavailable_reason())
    return current


ChampionDep = Annotated[LoadedModel, Depends(get_champion)]


def require_api_key(name: ApiKey) -> Callable[..., Awaitable[None]]:
    """A dependency refusing calls without the ``X-API-Key`` header equal to the key ``name`` (401).

    Each key grants one privilege: the feedback key is no admin key, nor the reverse. The comparison
    takes constant time, so response times do not reveal how much of a guess was right.
    """

    async def check_key(
        services: ServicesDep, x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None
    ) -> None:
        expected = getattr(services.settings, name).encode()
        if x_api_key is None or not secrets.compare_digest(x_api_key.encode(), expected):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing or wrong X-API-Key header")

    return check_key


require_admin_key = require_api_key("admin_api_key")
require_feedback_key = require_api_key("feedback_api_key")

JSON_MEDIA_TYPE = "application/json"


async def require_json(request: Request) -> None:
    """415 for a body that is not declared ``application/json`` (parameters such as charset are fine).

    Browsers send ``text/plain`` from any web page without asking the server first; refusing it keeps
    pages on other origins from posting to an API on localhost.
    """
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE and await request.body():
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"send the body as JSON with the header Content-Type: {JSON_MEDIA_TYPE}",
        )
