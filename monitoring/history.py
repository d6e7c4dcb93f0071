"""The monitor's memory: one JSON line per run in ``stores/monitoring/decisions.jsonl``, and an MLflow run.

The cool-down reads the lines back: the last retrain is the newest simulated day on which a retrain
that the monitor started completed. Each run is also an MLflow run of the ``fraudops-monitoring``
experiment (metrics, decision and reasons as tags, the HTML reports and the summary as artifacts),
so the MLflow UI shows monitoring beside the training runs it triggered.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any

from core.settings import Settings

log = logging.getLogger(__name__)

EXPERIMENT = "fraudops-monitoring"


def history_file(settings: Settings) -> Path:
    """Where the decisions are kept."""
    return settings.stores_dir / "monitoring" / "decisions.jsonl"


def append_decision(settings: Settings, record: dict[str, Any]) -> Path:
    """Append one run's record (JSON-serialisable values; dates and paths become strings)."""
    path = history_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
    return path


def read_history(settings: Settings) -> list[dict[str, Any]]:
    """Every recorded run, oldest first (empty before the first run)."""
    path = history_file(settings)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def last_retrain_day(history: list[dict[str, Any]], today: dt.date) -> dt.date | None:
    """The newest simulated day, not after ``today``, on which a retrain completed."""
    days = [
        dt.date.fromisoformat(rec["today"])
        for rec in history
        if rec.get("action") == "retrain" and (rec.get("retrain") or {}).get("completed")
    ]
    past = [d for d in days if d <= today]
    return max(past) if past else None


def run_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The numbers of one run worth plotting over time in MLflow."""
    perf = summary.get("performance") or {}
    prediction = summary.get("prediction_drift") or {}
    values = {
        "rows": summary.get("rows"),
        "drift_share": summary.get("drift_share"),
        "drifted_columns": len(summary.get("drifted_columns") or []),
        "prediction_drift": prediction.get("score"),
        "labelled_rows": perf.get("rows"),
        "labelled_frauds": perf.get("frauds"),
        "live_average_precision": perf.get("average_precision"),
        "live_precision_at_threshold": perf.get("precision_at_threshold"),
        "live_recall_at_threshold": perf.get("recall_at_threshold"),
        "expected_average_precision": summary.get("expected_ap"),
        "average_precision_floor": perf.get("floor"),
    }
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float) and math.isfinite(v)}


def log_run(settings: Settings, summary: dict[str, Any]) -> str | None:
    """Log one monitoring run to MLflow; returns its run id (None, with a warning, when MLflow fails).

    The JSON summary and the history line are the records the policy reads, so an unreachable
    tracking server costs the MLflow copy only.
    """
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    from pipelines.tracking import client_for, ensure_experiment

    try:
        client = client_for(settings)
        tags = {
            "today": summary["today"],
            "action": summary["action"],
            "reasons": " | ".join(summary["reasons"])[:5000],
            "model_version": str(summary["model"]["version"]),
        }
        run = client.create_run(
            ensure_experiment(settings, EXPERIMENT), run_name=f"monitor-{summary['today']}", tags=tags
        )
        run_id = str(run.info.run_id)
        stamp = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in run_metrics(summary).items()])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "summary.json"
            path.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
            client.log_artifact(run_id, str(path))
        for report in (summary.get("reports") or {}).values():
            if report and report.endswith(".html") and Path(report).exists():
                client.log_artifact(run_id, report, artifact_path="reports")
        client.set_terminated(run_id)
    except (MlflowException, OSError) as exc:
        log.warning("monitoring run not logged to MLflow (%s): the summary and the history keep it", exc)
        return None
    return run_id
