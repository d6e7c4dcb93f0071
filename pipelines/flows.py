"""Prefect flows: the workflow's stages as tasks, each a thin wrapper over a plain step function.

The Prefect UI shows each stage of a flow run as its own task run, with its duration and logs:

- ``ingest``: *validate and store* once per day file, then *version* (``dvc add`` + push) once.
- ``train``: one task per ``dvc.yaml`` stage (*validate*, *features*, *train*: DVC owns what it
  reproduces, so ``dvc repro`` alone still makes the same model), then *evaluate*, *gate*,
  *log run*, *register*, *promote*.
- ``retrain``: the same tasks, started by the monitoring flow as a subflow.

Only steps that are safe to repeat retry (``FRAUDOPS_TASK_RETRIES`` times, ``FRAUDOPS_RETRY_DELAY_S``
apart), and only on failures that can heal (a service that did not answer): DVC stages, reads from
MLflow, the training run (found again by its cycle id), registration (found again by its run id) and
the alias. The gate is pure and never retries. The same steps run without Prefect:
:func:`run_ingest` and :func:`pipelines.training.run_training` with their default ``step``.

Without ``PREFECT_API_URL`` Prefect starts a temporary local server for the process, whose runs are
kept in ``stores/prefect`` (``make prefect-ui`` shows them).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from core.clock import read_today
from core.params import Params, load_params
from core.settings import Settings, get_settings
from pipelines.ingest import (
    EXPECTED_NAMES,
    BatchOutcome,
    IngestReport,
    Kind,
    find_batches,
    find_ignored,
    ingest_batch,
    save_report,
)
from pipelines.training import Step, T, TrainingOutcome, new_cycle_id, plain, run_training
from pipelines.versioning import data_version, ensure_dvc_repo, push_data, track_data

log = logging.getLogger(__name__)


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


def tasks(settings: Settings) -> Step:
    """Run each stage as a Prefect task named for it; ``retry`` only for steps that are safe to repeat."""

    def as_task(
        name: str, fn: Callable[..., T], retry: bool, run_name: str | None = None
    ) -> Callable[..., T]:
        # no cache keys: Prefect would hash every input (frames, models) for a cache nothing reads
        options: dict[str, Any] = {"name": name, "task_run_name": run_name, "cache_policy": NO_CACHE}
        if retry:
            options |= {
                "retries": settings.task_retries,
                "retry_delay_seconds": settings.retry_delay_s,
                "retry_condition_fn": _retry_condition,
            }
        return task(**options)(fn)

    return as_task


# --- ingest ----------------------------------------------------------------------------------------


def run_ingest(
    settings: Settings, params: Params, paths: list[Path], today: dt.date, step: Step = plain
) -> IngestReport:
    """Validate and store every batch found under ``paths``, then version what arrived with DVC once.

    Files in those folders whose names are not days are listed in the report, not read.
    """
    ignored = [str(p) for p in find_ignored(paths)]
    if ignored:
        # info: the command line prints the report's list as its warning; the run logs keep it too
        log.info("not day files, left alone (expected %s): %s", EXPECTED_NAMES, ", ".join(ignored))
    store = step(
        "validate and store", store_batch, retry=False, run_name="validate and store {path.name} ({kind})"
    )
    outcomes = [store(settings, params, kind, path, today) for kind, path in find_batches(paths)]
    version = step("version", version_data, retry=True)(settings, outcomes)
    report = IngestReport(outcomes=outcomes, data_version=version, ignored=ignored)
    save_report(settings.reports_dir, report)
    return report


def store_batch(settings: Settings, params: Params, kind: Kind, path: Path, today: dt.date) -> BatchOutcome:
    """Validate one day file and copy it into the raw store (or the labels store)."""
    dest = settings.raw_dir if kind == "transactions" else settings.labels_dir
    outcome = ingest_batch(kind, path, dest, today, params.data.label_delay_days)
    log.info(
        "%s %s: %s, %d rows (%d duplicates, %d quarantined) %s",
        kind,
        path.name,
        outcome.status,
        outcome.rows,
        outcome.duplicates,
        outcome.quarantined,
        outcome.reason,
    )
    return outcome


def version_data(settings: Settings, outcomes: list[BatchOutcome]) -> str:
    """``dvc add`` and push the raw days and labels when something arrived; the data version.

    With nothing new the remote still gets what it lacks: a run that failed to push (the bucket out
    of reach) is completed by running the ingest again."""
    ensure_dvc_repo(settings.project_dir, settings.dvc_remote_url, settings.s3_endpoint_url)
    if any(o.status == "ingested" for o in outcomes) or data_version(settings.project_dir) == "untracked":
        version = track_data(settings.project_dir)
        log.info("dvc add and push: data version %s", version)
        return version
    version = data_version(settings.project_dir)
    pushed = push_data(settings.project_dir)
    log.info("nothing new to version: data version %s (%d files pushed the remote lacked)", version, pushed)
    return version


@flow(name="ingest", log_prints=False)
def ingest_flow(paths: list[str]) -> IngestReport:
    """Validate and store each day batch, then version them with DVC once."""
    settings, params = load_context()
    today = read_today(settings.clock_file) or dt.datetime.now(dt.UTC).date()
    return run_ingest(settings, params, [Path(p) for p in paths], today, tasks(settings))


# --- training --------------------------------------------------------------------------------------


def current_cycle_id() -> str:
    """The flow run's id: Prefect's retry of a failed run keeps it, so the retry finds what it logged."""
    run_id = flow_run.get_id()
    return str(run_id) if run_id else new_cycle_id()


@flow(name="train")
def training_flow(reason: str = "manual", cycle_id: str | None = None) -> TrainingOutcome:
    """Reproduce the data, train a candidate, gate it against the champion, register it.

    ``cycle_id``: resume a failed cycle (its id is the failed flow run's id) without a second version.
    """
    settings, params = load_context()
    return run_training(settings, params, reason, cycle_id or current_cycle_id(), tasks(settings))


@flow(name="retrain")
def retraining_flow(reason: str) -> TrainingOutcome:
    """Retraining triggered by monitoring: the training cycle on the newest versioned data."""
    settings, params = load_context()
    return run_training(settings, params, reason, current_cycle_id(), tasks(settings))
