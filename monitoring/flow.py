"""The monitoring flow: drift and delayed-label performance of the champion, the policy, and retraining.

:func:`run_monitoring` does the work and is what tests call; :func:`monitoring_flow` is the Prefect
wrapper, whose tasks are the stages: *gather windows* (the champion, the scored window, the labelled
week), *data drift*, *prediction drift*, *live performance*, *decide*, then the ``retrain`` subflow
(``pipelines.flows.retraining_flow``) when the policy says so, and *record*. A retrain is written to
the history as it starts, so one that crashes the process still counts: after a failed retrain the
next waits a back-off, and after too many in a row the monitor raises an alert instead
(:func:`monitoring.policy.hold_failing_retrain`). Each run writes its
Evidently HTML reports (data drift, prediction drift; classification quality when labels allow) and
a JSON summary under ``reports/monitoring/``, logs them to MLflow (experiment ``fraudops-monitoring``)
and appends its summary to the history the cool-down and ``fraudops monitor history`` read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import flow

from core.clock import last_labelled_day, read_today
from core.params import Params
from core.predlog import PredictionLog, open_prediction_log
from core.registry import SCORE_COLUMN
from core.settings import Settings
from monitoring.champion import Champion, read_champion
from monitoring.drift import features_from_log
from monitoring.evidence import Evidence, judge_window
from monitoring.history import append_decision, last_retrain_day, log_run, read_history, retrain_failures
from monitoring.performance import LABELLED_COLUMNS, drop_known_cards, label_predictions, lookback_start
from monitoring.plots import write_timeline
from monitoring.policy import Decision, RetrainFailures, hold_failing_retrain
from monitoring.summary import ModelRef, MonitoringSummary, MonitoringWindows, RetrainOutcome
from pipelines.tracking import client_for
from pipelines.training import Step, TrainingOutcome, plain

log = logging.getLogger(__name__)

RetrainFn = Callable[[str], TrainingOutcome]
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
    with contextlib.closing(open_prediction_log(settings)) as store:
        return read_log_windows(store, params, champion, windows)


def read_log_windows(
    store: PredictionLog, params: Params, champion: Champion, windows: dict[str, dict[str, dt.date]]
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """:func:`read_windows` from an open log."""
    data, week = windows["data"], windows["labelled"]
    scored = store.read_predictions(data["start"], data["end"])
    if scored.empty:
        current = pd.DataFrame(columns=[*champion.info.features, SCORE_COLUMN])
    else:
        current = features_from_log(scored, champion.info.features).assign(
            **{SCORE_COLUMN: scored[SCORE_COLUMN].to_numpy(dtype=float)}
        )
    start = lookback_start(week["start"], params)
    logged = store.read_predictions(start, week["end"], columns=SCORED_COLUMNS)
    if logged.empty:
        return current, pd.DataFrame(columns=LABELLED_COLUMNS), 0
    days = logged["tx_datetime"].dt.date
    labelled = label_predictions(logged, store.read_feedback(start, week["end"]))
    labelled = drop_known_cards(labelled, week["start"], week["end"], params)
    # the champion's validation figures say nothing about rows an earlier model scored
    labelled = labelled[labelled["model_version"].astype(str) == champion.info.version]
    scored_in_week = int(((days >= week["start"]) & (days <= week["end"])).sum())
    return current, labelled, scored_in_week


def run_retrain(
    retrain_fn: RetrainFn, reason: str, attempt: str | None = None
) -> tuple[RetrainOutcome, Exception | None]:
    """Call the retraining and summarise it; an exception is returned to be raised once recorded."""
    try:
        outcome = retrain_fn(reason)
    except Exception as exc:  # recorded in the history, then re-raised by the caller
        log.exception("retraining failed")
        return RetrainOutcome(started=True, error=repr(exc), attempt=attempt), exc
    promoted = outcome.decision.promote
    return RetrainOutcome(
        started=True,
        completed=True,
        promoted=promoted,
        version=outcome.version,
        outcome=outcome,
        attempt=attempt,
    ), None


@dataclass(frozen=True)
class Gathered:
    """What the judgement reads: the windows, the champion, its scored and labelled rows, the last retrain."""

    windows: MonitoringWindows
    champion: Champion
    current: pd.DataFrame  # the scored window's features and scores
    labelled: pd.DataFrame  # the champion's labelled week
    scored_in_week: int  # the labelled week's scored rows, labelled or not
    last_retrain: dt.date | None  # for the cool-down
    failures: RetrainFailures  # for the back-off and the alert


def gather_windows(settings: Settings, params: Params, day: dt.date) -> Gathered:
    """Read the champion (MLflow), its windows (the prediction and feedback log) and the history."""
    windows = plan_windows(day, params)
    champion = read_champion(settings)
    current, labelled, scored_in_week = read_windows(settings, params, champion, windows)
    history = read_history(settings)
    last_retrain = last_retrain_day(history, day)
    failures = retrain_failures(history)
    if failures.count:  # a model registered since (`fraudops train`) ends the series
        failures = retrain_failures(history, last_registration(settings))
    planned = MonitoringWindows.model_validate(windows)
    return Gathered(planned, champion, current, labelled, scored_in_week, last_retrain, failures)


def last_registration(settings: Settings) -> dt.datetime | None:
    """When the newest model version was registered (None: none yet)."""
    found = client_for(settings).search_model_versions(
        f"name='{settings.model_name}'", max_results=1, order_by=["creation_timestamp DESC"]
    )
    if not found:
        return None
    return dt.datetime.fromtimestamp(found[0].creation_timestamp / 1000, dt.UTC)


def run_monitoring(
    settings: Settings,
    params: Params,
    today: dt.date | None = None,
    retrain_fn: RetrainFn | None = None,
    step: Step = plain,
) -> MonitoringSummary:
    """One monitoring run as of ``today``: judge drift and performance, decide, maybe retrain, record.

    ``step`` runs each stage (:func:`monitoring_flow` passes Prefect tasks); only reads retry.
    """
    day = resolve_today(settings, today)
    gathered = step("gather windows", gather_windows, retry=True)(settings, params, day)
    out_dir = settings.reports_dir / "monitoring"
    evidence, decision = judge_window(
        gathered.champion,
        gathered.current,
        gathered.labelled,
        params,
        day,
        gathered.last_retrain,
        out_dir,
        step,
    )
    decision = hold_failing_retrain(decision, gathered.failures, params.monitoring, day)
    retrain: RetrainOutcome | None = None
    error: Exception | None = None
    if decision.action == "retrain":
        retrain, error = start_retrain(settings, retrain_fn, day, gathered, evidence, decision)
    summary = build_summary(day, gathered, evidence, decision, retrain, out_dir / f"{day}-summary.json")
    # not retried: a second attempt would log a second MLflow run and append a second history line
    summary = step("record", record_run, retry=False)(settings, summary)
    if error is not None:
        raise error
    return summary


def start_retrain(
    settings: Settings,
    retrain_fn: RetrainFn | None,
    day: dt.date,
    gathered: Gathered,
    evidence: Evidence,
    decision: Decision,
) -> tuple[RetrainOutcome, Exception | None]:
    """Write the "retrain started" line to the history, then retrain (what it came to is recorded next)."""
    if retrain_fn is None:
        return RetrainOutcome(started=False, note="retraining disabled for this run"), None
    attempt = uuid.uuid4().hex
    started = RetrainOutcome(started=True, attempt=attempt, finished=False)
    append_decision(settings, build_summary(day, gathered, evidence, decision, started, None))
    return run_retrain(retrain_fn, f"monitor {day}: " + "; ".join(decision.reasons), attempt)


def build_summary(
    day: dt.date,
    gathered: Gathered,
    evidence: Evidence,
    decision: Decision,
    retrain: RetrainOutcome | None,
    summary_path: Path | None,
) -> MonitoringSummary:
    """The record of one run (also the history line), before it is logged to MLflow."""
    info = gathered.champion.info
    failures = gathered.failures.count
    if retrain is not None and retrain.started and retrain.finished:
        failures = 0 if retrain.completed else failures + 1
    return MonitoringSummary(
        run_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        today=day,
        windows=gathered.windows,
        rows=evidence.rows,
        model=ModelRef(name=info.name, version=info.version, run_id=info.run_id, threshold=info.threshold),
        drift=evidence.drift,
        performance=evidence.performance.model_copy(update={"scored_rows": gathered.scored_in_week}),
        decision=decision,
        retrain=retrain,
        reports=evidence.reports.model_copy(update={"summary_json": summary_path}),
        retrain_failures=failures,
    )


def record_run(settings: Settings, summary: MonitoringSummary) -> MonitoringSummary:
    """Redraw the timeline, log the run to MLflow, then write its JSON summary and append it to the history."""
    write_timeline(settings, summary)
    summary = summary.model_copy(update={"mlflow_run_id": log_run(settings, summary)})
    if summary.reports.summary_json is not None:
        write_summary(summary.reports.summary_json, summary)
    append_decision(settings, summary)
    return summary


def write_summary(path: Path, summary: MonitoringSummary) -> None:
    """Write the run's summary beside its HTML reports."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(summary.model_dump_json(indent=2), encoding="utf-8")


@flow(name="monitor")
def monitoring_flow(today: str | None = None, retrain: bool = True) -> MonitoringSummary:
    """Judge the champion's last window for drift and performance; retrain when the policy says so."""
    from pipelines.flows import load_context, retraining_flow, tasks

    settings, params = load_context()
    day = dt.date.fromisoformat(today) if today else None
    return run_monitoring(settings, params, day, retraining_flow if retrain else None, tasks(settings))
