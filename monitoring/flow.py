"""The monitoring flow: drift and delayed-label performance of the champion, the policy, and retraining.

:func:`run_monitoring` does the work and is what tests call; :func:`monitoring_flow` is the Prefect
wrapper, which retrains through ``pipelines.flows.retraining_flow`` (imported when the flow runs).
Each run writes an Evidently HTML report and a JSON summary under ``reports/monitoring/`` and appends
its decision to the history the cool-down reads.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow

from core.clock import last_labelled_day, read_today
from core.metrics import card_k
from core.params import Params
from core.predlog import read_feedback, read_predictions
from core.registry import CHAMPION, REFERENCE_ARTIFACT, ModelInfo, read_model_info, registry_client
from core.settings import Settings
from monitoring.drift import DriftResult, detect_drift, features_from_log
from monitoring.history import append_decision, last_retrain_day, read_history
from monitoring.performance import label_predictions, measure_performance
from monitoring.policy import Decision, decide

log = logging.getLogger(__name__)

RetrainFn = Callable[[str], dict[str, Any]]
EXPECTED_AP_METRIC = "test_average_precision"


@dataclass(frozen=True)
class Champion:
    """The serving model, the reference sample it was trained on and the AP its test promised."""

    info: ModelInfo
    reference: pd.DataFrame | None
    expected_ap: float | None
    k: int | None = None  # card precision@k's k of the champion's test (from the population size)


def resolve_today(settings: Settings, override: dt.date | None) -> dt.date:
    """The day being judged: the override, else the simulated clock, else the UTC calendar."""
    today = override or read_today(settings.clock_file)
    if today is None:
        today = dt.datetime.now(dt.UTC).date()
        log.warning("simulated clock not set: monitoring as of the real date %s", today)
    return today


def plan_windows(today: dt.date, params: Params) -> dict[str, dict[str, dt.date]]:
    """Scored window: the ``window_days`` days before today; labelled: as many ending on the last labelled day."""
    days = dt.timedelta(days=params.monitoring.window_days)
    labelled_end = last_labelled_day(today, params.data.label_delay_days)
    return {
        "data": {"start": today - days, "end": today - dt.timedelta(days=1)},
        "labelled": {"start": labelled_end - days + dt.timedelta(days=1), "end": labelled_end},
    }


def read_champion(settings: Settings) -> Champion:
    """The champion's metadata, reference sample and expected AP from the MLflow registry."""
    from mlflow.exceptions import MlflowException

    client = registry_client(settings.tracking_uri)
    try:
        info = read_model_info(client, settings.model_name, CHAMPION)
    except MlflowException as exc:
        raise LookupError(
            f"no {CHAMPION!r} version of model {settings.model_name!r}: train and promote one first"
        ) from exc
    metrics = client.get_run(info.run_id).data.metrics
    k = int(metrics["test_k"]) if "test_k" in metrics else None
    return Champion(info, download_reference(settings, info.run_id), metrics.get(EXPECTED_AP_METRIC), k)


def download_reference(settings: Settings, run_id: str) -> pd.DataFrame | None:
    """The reference sample logged with a training run, or None when the run has none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=REFERENCE_ARTIFACT,
                tracking_uri=settings.tracking_uri,
                dst_path=tmp,
            )
        except (MlflowException, OSError) as exc:
            log.warning("run %s has no reference sample (%s): drift not checked", run_id, exc)
            return None
        return pd.read_parquet(path)


def check_drift(
    champion: Champion, predictions: pd.DataFrame, html_path: Path, params: Params
) -> DriftResult | None:
    """Evidently's drift verdict on the window, or None without a reference or enough rows."""
    if champion.reference is None or len(predictions) < params.monitoring.min_rows:
        return None
    columns = champion.info.features
    current = features_from_log(predictions, columns)
    return detect_drift(champion.reference, current, columns, html_path, params.monitoring.drift_share)


def check_performance(
    settings: Settings,
    params: Params,
    info: ModelInfo,
    windows: dict[str, dict[str, dt.date]],
    champion_k: int | None = None,
) -> dict[str, Any]:
    """Live metrics of the champion on the labelled window (rows it scored itself), with its test's k."""
    window = windows["labelled"]
    scored = read_predictions(settings.prediction_log, window["start"], window["end"])
    labelled = label_predictions(scored, read_feedback(settings.prediction_log))
    if "model_version" in labelled.columns:
        # The champion's expected AP says nothing about rows an earlier model scored.
        labelled = labelled[labelled["model_version"].astype(str) == info.version]
    k = champion_k or card_k(labelled["customer_id"].nunique(), params.evaluation.k_per_5000_customers)
    return {**measure_performance(labelled, info.threshold, k), "scored_rows": len(scored)}


def run_retrain(retrain_fn: RetrainFn | None, reason: str) -> tuple[dict[str, Any], Exception | None]:
    """Call the retraining and summarise it; an exception is returned to be raised once recorded."""
    if retrain_fn is None:
        return {"started": False, "completed": False, "note": "retraining disabled for this run"}, None
    try:
        result = retrain_fn(reason)
    except Exception as exc:  # recorded in the history, then re-raised by the caller
        log.exception("retraining failed")
        return {"started": True, "completed": False, "error": repr(exc)}, exc
    gate = result.get("decision") or {}
    promoted = bool(gate.get("promote", result.get("alias") == CHAMPION))
    return {
        "started": True,
        "completed": True,
        "promoted": promoted,
        "version": result.get("version"),
        "alias": result.get("alias"),
        "gate_reasons": gate.get("reasons", []),
        "outcome": result,
    }, None


def run_monitoring(
    settings: Settings, params: Params, today: dt.date | None = None, retrain_fn: RetrainFn | None = None
) -> dict[str, Any]:
    """One monitoring run as of ``today``: judge drift and performance, decide, record, maybe retrain."""
    day = resolve_today(settings, today)
    windows = plan_windows(day, params)
    champion = read_champion(settings)
    predictions = read_predictions(settings.prediction_log, windows["data"]["start"], windows["data"]["end"])
    out_dir = settings.reports_dir / "monitoring"
    html_path, summary_path = out_dir / f"{day}-drift.html", out_dir / f"{day}-summary.json"
    drift = check_drift(champion, predictions, html_path, params)
    live = check_performance(settings, params, champion.info, windows, champion.k)
    last_retrain = last_retrain_day(read_history(settings), day)
    decision = decide(
        drift,
        live,
        champion.expected_ap,
        params.monitoring,
        day,
        last_retrain,
        len(predictions),
        live["frauds"],
    )
    log.info("monitoring %s: %s (%s)", day, decision.action, "; ".join(decision.reasons))
    retrain: dict[str, Any] | None = None
    error: Exception | None = None
    if decision.action == "retrain":
        retrain, error = run_retrain(retrain_fn, f"monitor {day}: " + "; ".join(decision.reasons))
    summary = build_summary(day, windows, champion, len(predictions), drift, live, decision, retrain)
    summary["reports"] = {"drift_html": str(html_path) if drift else None, "summary_json": str(summary_path)}
    write_summary(summary_path, summary)
    append_decision(settings, summary)
    if error is not None:
        raise error
    return summary


def build_summary(
    day: dt.date,
    windows: dict[str, dict[str, dt.date]],
    champion: Champion,
    rows: int,
    drift: DriftResult | None,
    live: dict[str, Any],
    decision: Decision,
    retrain: dict[str, Any] | None,
) -> dict[str, Any]:
    """The JSON record of one run (also the history line)."""
    return {
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "today": day.isoformat(),
        "data_window": {k: v.isoformat() for k, v in windows["data"].items()},
        "labelled_window": {k: v.isoformat() for k, v in windows["labelled"].items()},
        "rows": rows,
        "model": {
            "name": champion.info.name,
            "version": champion.info.version,
            "run_id": champion.info.run_id,
        },
        "expected_ap": champion.expected_ap,
        "drift_share": drift.share if drift else None,
        "drifted_columns": drift.drifted_columns if drift else [],
        "drift": drift.to_dict() if drift else None,
        "performance": live,
        "action": decision.action,
        "reasons": decision.reasons,
        "retrain": retrain,
    }


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """Write the run's summary beside its HTML report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")


@flow(name="monitor")
def monitoring_flow(today: str | None = None, retrain: bool = True) -> dict[str, Any]:
    """Judge the champion's last window for drift and performance; retrain when the policy says so."""
    from pipelines.flows import load_context, retraining_flow

    settings, params = load_context()
    day = dt.date.fromisoformat(today) if today else None
    return run_monitoring(settings, params, day, retraining_flow if retrain else None)
