"""The monitoring flow: drift and delayed-label performance of the champion, the policy, and retraining.

:func:`run_monitoring` does the work and is what tests call; :func:`monitoring_flow` is the Prefect
wrapper, which retrains through ``pipelines.flows.retraining_flow`` (imported when the flow runs).
Each run writes its Evidently HTML reports (drift; classification quality when labels allow) and a
JSON summary under ``reports/monitoring/``, logs them to MLflow (experiment ``fraudops-monitoring``)
and appends its decision to the history the cool-down and ``fraudops monitor history`` read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow

from core.clock import last_labelled_day, read_today
from core.params import Params
from core.predlog import read_feedback, read_predictions
from core.registry import CHAMPION, SCORE_COLUMN
from core.settings import Settings
from monitoring.champion import Champion, read_champion
from monitoring.drift import features_from_log
from monitoring.evidence import Evidence, judge_window
from monitoring.history import append_decision, last_retrain_day, log_run, read_history
from monitoring.performance import LABELLED_COLUMNS, drop_known_cards, label_predictions, lookback_start
from monitoring.policy import Decision

log = logging.getLogger(__name__)

RetrainFn = Callable[[str], dict[str, Any]]
SCORED_COLUMNS = [c for c in LABELLED_COLUMNS if c != "tx_fraud"]  # what the labels join needs of the log


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


def read_windows(
    settings: Settings, params: Params, champion: Champion, windows: dict[str, dict[str, dt.date]]
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The scored window's features and scores, the champion's labelled week, and the week's scored rows.

    The labelled week is read from far enough back to know which cards were already compromised
    when it began (see :func:`monitoring.performance.drop_known_cards`), with only the columns that
    takes: five weeks of every feature would double the time of the read.
    """
    data, week = windows["data"], windows["labelled"]
    scored = read_predictions(settings.prediction_log, data["start"], data["end"])
    if scored.empty:
        current = pd.DataFrame(columns=[*champion.info.features, SCORE_COLUMN])
    else:
        current = features_from_log(scored, champion.info.features).assign(
            **{SCORE_COLUMN: scored[SCORE_COLUMN].to_numpy(dtype=float)}
        )
    start = lookback_start(week["start"], params)
    logged = read_predictions(settings.prediction_log, start, week["end"], columns=SCORED_COLUMNS)
    if logged.empty:
        return current, pd.DataFrame(columns=LABELLED_COLUMNS), 0
    days = logged["tx_datetime"].dt.date
    labelled = label_predictions(logged, read_feedback(settings.prediction_log, start, week["end"]))
    labelled = drop_known_cards(labelled, week["start"], week["end"], params)
    # the champion's validation figures say nothing about rows an earlier model scored
    labelled = labelled[labelled["model_version"].astype(str) == champion.info.version]
    scored_in_week = int(((days >= week["start"]) & (days <= week["end"])).sum())
    return current, labelled, scored_in_week


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
    current, labelled, scored_in_week = read_windows(settings, params, champion, windows)
    out_dir = settings.reports_dir / "monitoring"
    last_retrain = last_retrain_day(read_history(settings), day)
    evidence, decision = judge_window(champion, current, labelled, params, day, last_retrain, out_dir)
    evidence.performance["scored_rows"] = scored_in_week
    retrain: dict[str, Any] | None = None
    error: Exception | None = None
    if decision.action == "retrain":
        retrain, error = run_retrain(retrain_fn, f"monitor {day}: " + "; ".join(decision.reasons))
    summary = build_summary(day, windows, champion, evidence, decision, retrain)
    summary_path = out_dir / f"{day}-summary.json"
    summary["reports"] = {**evidence.reports, "summary_json": str(summary_path)}
    summary["mlflow_run_id"] = log_run(settings, summary)
    write_summary(summary_path, summary)
    append_decision(settings, summary)
    if error is not None:
        raise error
    return summary


def build_summary(
    day: dt.date,
    windows: dict[str, dict[str, dt.date]],
    champion: Champion,
    evidence: Evidence,
    decision: Decision,
    retrain: dict[str, Any] | None,
) -> dict[str, Any]:
    """The JSON record of one run (also the history line)."""
    drift = evidence.drift
    expected = champion.expected
    return {
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "today": day.isoformat(),
        "data_window": {k: v.isoformat() for k, v in windows["data"].items()},
        "labelled_window": {k: v.isoformat() for k, v in windows["labelled"].items()},
        "rows": evidence.rows,
        "model": {
            "name": champion.info.name,
            "version": champion.info.version,
            "run_id": champion.info.run_id,
            "threshold": champion.info.threshold,
        },
        "expected_ap": expected.average_precision if expected else None,
        "drift_share": drift.share if drift else None,
        "drifted_columns": drift.drifted_columns if drift else [],
        "prediction_drift": drift.prediction if drift else None,
        "drift": drift.to_dict() if drift else None,
        "performance": evidence.performance,
        "performance_change": evidence.performance.get("change"),
        "action": decision.action,
        "reasons": decision.reasons,
        "retrain": retrain,
    }


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """Write the run's summary beside its HTML reports."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")


@flow(name="monitor")
def monitoring_flow(today: str | None = None, retrain: bool = True) -> dict[str, Any]:
    """Judge the champion's last window for drift and performance; retrain when the policy says so."""
    from pipelines.flows import load_context, retraining_flow

    settings, params = load_context()
    day = dt.date.fromisoformat(today) if today else None
    return run_monitoring(settings, params, day, retraining_flow if retrain else None)
