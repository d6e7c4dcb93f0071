"""Prefect flows: thin wrappers over the plain step functions, with retries where services are called.

Without ``PREFECT_API_URL`` Prefect starts a temporary local server for the process, whose runs are
kept in ``stores/prefect`` (``make prefect-ui`` shows them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, task

from core.clock import read_today
from core.params import Params, load_params
from core.settings import Settings, get_settings
from pipelines.ingest import IngestReport, find_batches, ingest_batch
from pipelines.training import TrainingOutcome, run_training
from pipelines.versioning import data_version, ensure_dvc_repo, track_data


def load_context() -> tuple[Settings, Params]:
    """Settings and ``params.yaml`` of the project."""
    settings = get_settings()
    return settings, load_params(settings.project_dir / "params.yaml")


def is_transient(exc: BaseException | None) -> bool:
    """Worth retrying: a service that did not answer. Bad data or a missing file will not heal."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, FileNotFoundError | PermissionError):
        return False
    return isinstance(exc, ConnectionError | TimeoutError | OSError | MlflowException)


def _retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    return is_transient(state.result(raise_on_failure=False))


def _retrying(fn: Any, settings: Settings) -> Any:
    return task(fn).with_options(
        retries=settings.task_retries,
        retry_delay_seconds=settings.retry_delay_s,
        retry_condition_fn=_retry_condition,
    )


def run_ingest(settings: Settings, params: Params, paths: list[Path], today: dt.date) -> IngestReport:
    """Ingest every batch found under ``paths``, then version what arrived with DVC."""
    report = IngestReport()
    for kind, path in find_batches(paths):
        dest = settings.raw_dir if kind == "transactions" else settings.labels_dir
        report.outcomes.append(ingest_batch(kind, path, dest, today, params.data.label_delay_days))
    ensure_dvc_repo(settings.project_dir)
    if report.ingested or data_version(settings.project_dir) == "untracked":
        report.data_version = _retrying(track_data, settings)(settings.project_dir)
    else:
        report.data_version = data_version(settings.project_dir)
    return report


@flow(name="ingest", log_prints=False)
def ingest_flow(paths: list[str]) -> dict[str, Any]:
    """Ingest and validate day batches into the raw store, and version them with DVC."""
    settings, params = load_context()
    today = read_today(settings.clock_file) or dt.datetime.now(dt.UTC).date()
    return run_ingest(settings, params, [Path(p) for p in paths], today).to_dict()


def outcome_dict(outcome: TrainingOutcome) -> dict[str, Any]:
    """A JSON-friendly summary of a training cycle."""
    data = asdict(outcome)
    data["windows"] = outcome.windows.as_tags()
    return data


@flow(name="train")
def training_flow(reason: str = "manual") -> dict[str, Any]:
    """Reproduce the data, train a candidate, gate it against the champion, register it."""
    settings, params = load_context()
    return outcome_dict(_retrying(run_training, settings)(settings, params, reason))


@flow(name="retrain")
def retraining_flow(reason: str) -> dict[str, Any]:
    """Retraining triggered by monitoring: the training cycle on the newest versioned data."""
    return training_flow.fn(reason)  # same steps; its own flow name in the Prefect UI
