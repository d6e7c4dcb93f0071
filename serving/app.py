"""The scoring service: ``uvicorn --factory serving.app:create_app``.

Nothing happens at import or in :func:`create_app`; the lifespan reads settings and params, warm-starts
the feature state and loads the champion. Without a champion the app still starts and answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI

from core.clock import ClockWatch
from core.features import feature_names
from core.params import load_params
from core.predlog import PredictionWriter, open_prediction_log
from core.settings import Settings, ensure_api_keys, get_settings
from serving.deps import Services
from serving.errors import add_error_handlers
from serving.limits import BodySizeLimit
from serving.model_store import ModelStore, ModelStoreError, poll_champion
from serving.routes import admin, feedback, health, model, scoring
from serving.shared_state import open_state
from serving.telemetry import Telemetry, add_request_metrics

logger = logging.getLogger(__name__)


def build_services(settings: Settings, telemetry: Telemetry) -> Services:
    """Read params, warm-start the feature state and try to load the champion."""
    params = load_params(settings.project_dir / "params.yaml")
    ensure_api_keys(settings)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in the server log
    names = feature_names(params.features)
    store = ModelStore(settings, names, params.data.label_delay_days, telemetry)
    predictions = PredictionWriter(
        open_prediction_log(settings),
        names,
        flush_interval_s=settings.log_flush_interval_s,
        max_pending=settings.log_max_pending_rows,
        retry_interval_s=settings.log_retry_interval_s,
        close_timeout_s=settings.log_close_timeout_s,
        spill_to=settings.prediction_log,
    )
    telemetry.watch_prediction_log(predictions.status)
    state, keeper = open_state(settings, params)
    services = Services(
        settings,
        params,
        state,
        store,
        telemetry,
        predictions,
        ClockWatch(settings.clock_file),
        keeper,
    )
    predictions.start()
    try:
        store.reload()
    except ModelStoreError as exc:
        logger.warning("starting without a model: %s", exc)
    return services


@contextlib.asynccontextmanager
async def run_poller(services: Services) -> AsyncIterator[None]:
    """Follow the champion alias in the background while the app runs (interval 0: never)."""
    interval = services.settings.reload_interval_s
    task = asyncio.create_task(poll_champion(services.store, interval)) if interval > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI app; ``settings`` default to the process settings, read at startup."""
    telemetry = Telemetry()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await asyncio.to_thread(build_services, settings or get_settings(), telemetry)
        app.state.services = services
        # What start-up built (the libraries, the model, a warm feature state: about a million objects)
        # lives as long as the process: frozen, the garbage collector stops walking it. Unfrozen, each
        # full collection walked all of it, a pause of up to 190 ms for the request in flight.
        gc.collect()
        gc.freeze()
        try:
            async with run_poller(services):
                yield
        finally:  # uvicorn waits for in-flight requests first: every acknowledged prediction is written,
            # or saved to a file at log_close_timeout_s (a full disk cannot hang the stop)
            await asyncio.to_thread(services.predictions.close)
            if services.keeper is not None:
                await asyncio.to_thread(services.keeper.stop)
            gc.unfreeze()  # an app stopped in a process that goes on (tests) leaves its objects collectable

    app = FastAPI(
        title="fraudops scoring API",
        summary="Scores raw card transactions with the MLflow champion model.",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, settings=settings)  # inside the metrics: refusals are counted
    add_request_metrics(app, telemetry)
    add_error_handlers(app)
    routers = (
        scoring.router,
        feedback.router,
        model.router,
        health.router,
        health.metrics_router,
        admin.router,
    )
    for router in routers:
        app.include_router(router)
    return app
