"""The monitor's memory: one JSON line per run in ``stores/monitoring/decisions.jsonl``, and an MLflow run.

The cool-down reads the lines back: the last retrain is the newest simulated day on which a retrain
that the monitor started completed. A retrain is recorded as it starts, so one that crashed the process
still counts among the failures in a row that back the next attempt off (:func:`retrain_failures`).
Each run is also an MLflow run of the ``fraudops-monitoring`` experiment (metrics, decision and
reasons as tags, the HTML reports and the summary as artifacts), so the MLflow UI shows monitoring
beside the training runs it triggered.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import tempfile
from pathlib import Path

from pydantic import ValidationError

from core.settings import Settings
from monitoring.policy import RetrainFailures
from monitoring.summary import MonitoringSummary

log = logging.getLogger(__name__)

EXPERIMENT = "fraudops-monitoring"


def history_file(settings: Settings) -> Path:
    """Where the decisions are kept."""
    return settings.stores_dir / "monitoring" / "decisions.jsonl"


def append_decision(settings: Settings, summary: MonitoringSummary) -> Path:
    """Append one run's summary as a JSON line."""
    path = history_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(summary.model_dump_json() + "\n")
    return path


def read_history(settings: Settings) -> list[MonitoringSummary]:
    """Every recorded run, oldest first (empty before the first run).

    A retrain's started line gives way to its finished line; one without a finished line stays: that
    run crashed while retraining.
    """
    path = history_file(settings)
    if not path.exists():
        return []
    runs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            runs.append(MonitoringSummary.model_validate_json(line))
        except ValidationError as exc:  # a line of an earlier layout, or an edited file
            raise ValueError(
                f"{path}, line {number}, is not a monitoring summary ({exc.error_count()} errors, first: "
                f"{exc.errors()[0]['msg']} at {'.'.join(map(str, exc.errors()[0]['loc']))}): "
                "an earlier version may have written it; move the file away to start a new history"
            ) from exc
    finished = {run.retrain.attempt for run in runs if run.retrain is not None and run.retrain.finished}
    return [run for run in runs if not superseded(run, finished)]


def superseded(run: MonitoringSummary, finished: set[str | None]) -> bool:
    """A retrain's started line whose finished line was written (it says nothing the other does not)."""
    return run.retrain is not None and not run.retrain.finished and run.retrain.attempt in finished


def retrain_failures(history: list[MonitoringSummary], since: dt.datetime | None = None) -> RetrainFailures:
    """The retrains in a row, newest back, that did not complete: failed, or crashed with no record.

    The series ends at a completed retrain, and at the runs before ``since`` (the newest registered
    model: ``fraudops train`` after an alert starts a new series).
    """
    failed: list[MonitoringSummary] = []
    for run in reversed(history):
        if since is not None and run.run_at < since:
            break
        if run.retrain is None or not run.retrain.started:
            continue
        if run.retrain.completed:
            break
        failed.append(run)
    if not failed:
        return RetrainFailures()
    newest = failed[0].retrain
    return RetrainFailures(len(failed), failed[0].today, newest.error if newest else None)


def last_retrain_day(history: list[MonitoringSummary], today: dt.date) -> dt.date | None:
    """The newest simulated day, not after ``today``, on which a retrain completed."""
    days = [
        run.today
        for run in history
        if run.decision.action == "retrain" and run.retrain is not None and run.retrain.completed
    ]
    past = [d for d in days if d <= today]
    return max(past) if past else None


def run_metrics(summary: MonitoringSummary) -> dict[str, float]:
    """The numbers of one run worth plotting over time in MLflow."""
    perf, drift = summary.performance, summary.drift
    prediction = drift.prediction if drift else None
    values: dict[str, float | None] = {
        "rows": summary.rows,
        "drift_share": drift.share if drift else None,
        "drifted_columns": len(drift.drifted_columns) if drift else 0,
        "prediction_drift": prediction.score if prediction else None,
        "labelled_rows": perf.rows,
        "labelled_frauds": perf.frauds,
        "live_average_precision": perf.average_precision,
        "live_precision_at_threshold": perf.precision_at_threshold,
        "live_recall_at_threshold": perf.recall_at_threshold,
        "expected_average_precision": perf.expected.average_precision if perf.expected else None,
        "average_precision_floor": perf.floor,
        "retrain_failures": summary.retrain_failures,
    }
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def log_run(settings: Settings, summary: MonitoringSummary) -> str | None:
    """Log one monitoring run to MLflow; returns its run id (None, with a warning, when MLflow fails).

    The JSON summary and the history line are the records the policy reads, so an unreachable
    tracking server costs the MLflow copy only.
    """
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    from monitoring.plots import timeline_file
    from pipelines.tracking import client_for, ensure_experiment

    try:
        client = client_for(settings)
        tags = {
            "today": summary.today.isoformat(),
            "action": summary.decision.action,
            "reasons": " | ".join(summary.decision.reasons)[:5000],
            "model_version": summary.model.version,
        }
        run = client.create_run(
            ensure_experiment(settings, EXPERIMENT), run_name=f"monitor-{summary.today}", tags=tags
        )
        run_id = str(run.info.run_id)
        stamp = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in run_metrics(summary).items()])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "summary.json"
            path.write_text(summary.model_dump_json(indent=2), encoding="utf-8")
            client.log_artifact(run_id, str(path))
        reports = summary.reports
        for report in (reports.drift_html, reports.prediction_drift_html, reports.performance_html):
            if report is not None and report.exists():
                client.log_artifact(run_id, str(report), artifact_path="reports")
        if timeline_file(settings).exists():  # drift share and live AP up to this run (monitoring.plots)
            client.log_artifact(run_id, str(timeline_file(settings)), artifact_path="reports")
        client.set_terminated(run_id)
    except (MlflowException, OSError) as exc:
        log.warning("monitoring run not logged to MLflow (%s): the summary and the history keep it", exc)
        return None
    return run_id
