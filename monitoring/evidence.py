"""One window judged: Evidently's drift reports, live performance against validation, the policy's decision.

Everything here works on frames already read, so the monitoring flow (which reads the prediction
log) and the false-alarm benchmark (which simulates its windows in memory) judge with the same code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.metrics import card_k
from core.params import MonitoringParams, Params
from core.registry import SCORE_COLUMN
from monitoring.champion import Champion
from monitoring.drift import (
    VALUE_DRIFT_METRIC,
    DriftConfig,
    DriftResult,
    PredictionDrift,
    as_prediction,
    detect_drift,
    status_of,
    test_columns,
)
from monitoring.performance import (
    Expected,
    LivePerformance,
    PerformanceChange,
    measure_performance,
    save_performance_report,
)
from monitoring.policy import Decision, ap_floor, decide
from monitoring.summary import ReportPaths
from pipelines.training import Step, plain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evidence:
    """What one monitoring run measured, and where its reports are."""

    rows: int
    drift: DriftResult | None  # its ``prediction``: the score's test
    performance: LivePerformance
    reports: ReportPaths


def drift_config(params: MonitoringParams) -> DriftConfig:
    """The policy's drift tests in Evidently's terms."""
    return DriftConfig(
        drift_share=params.drift_share,
        methods=params.drift_methods,
        thresholds=params.drift_thresholds,
        score_method=params.prediction_drift_method,
        score_threshold=params.prediction_drift_threshold,
    )


def check_drift(
    champion: Champion, current: pd.DataFrame, params: MonitoringParams, html_path: Path | None
) -> DriftResult | None:
    """Evidently's verdict on the window's features, or None without a reference or enough rows."""
    if champion.reference is None or len(current) < params.min_rows:
        return None
    return detect_drift(
        champion.reference, current, champion.info.features, html_path, config=drift_config(params)
    )


def check_prediction_drift(
    champion: Champion, current: pd.DataFrame, params: MonitoringParams, html_path: Path | None
) -> PredictionDrift | None:
    """Evidently's drift test on the scores against the reference's, or None when either lacks them.

    Its own small report: about 0.1 s beside the features' 2 s (measured on the drift tests'
    windows), so each check is a stage of its own. Without ``html_path`` the test runs directly.
    """
    reference = champion.reference
    if reference is None or len(current) < params.min_rows:
        return None
    if SCORE_COLUMN not in reference.columns or SCORE_COLUMN not in current.columns:
        return None
    config = drift_config(params)
    if html_path is None:  # the score as a column of its own, with the score's method and threshold
        method, threshold = config.score_method, config.score_threshold
        alone = DriftConfig(
            methods={SCORE_COLUMN: method} if method else {},
            thresholds={SCORE_COLUMN: threshold} if threshold is not None else {},
        )
        verdict = test_columns(reference, current, [SCORE_COLUMN], alone)
        return as_prediction(verdict.column_scores[SCORE_COLUMN], SCORE_COLUMN)
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(numerical_columns=[SCORE_COLUMN])
    metric = ValueDrift(column=SCORE_COLUMN, method=config.score_method, threshold=config.score_threshold)
    snapshot = Report([metric], include_tests=True).run(
        current_data=Dataset.from_pandas(current[[SCORE_COLUMN]], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[[SCORE_COLUMN]], data_definition=definition),
    )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    results = json.loads(snapshot.json())
    values = {m["id"]: m["value"] for m in results["metrics"]}
    [test] = [t for t in results["tests"] if t["metric_config"]["params"]["type"] == VALUE_DRIFT_METRIC]
    config_of = test["metric_config"]
    prediction = PredictionDrift(
        column=SCORE_COLUMN,
        method=config_of["params"]["method"],
        score=float(values[config_of["metric_id"]]),
        threshold=float(config_of["params"]["threshold"]),
        drifted=status_of(test) == "FAIL",
    )
    log.info(
        "prediction drift %s (%s %.3f); report %s",
        prediction.drifted,
        prediction.method,
        prediction.score,
        html_path,
    )
    return prediction


def check_performance(
    champion: Champion, labelled: pd.DataFrame, params: Params, html_path: Path | None
) -> LivePerformance:
    """Live metrics on the labelled week, their change from the validation figures, and the alarm floor."""
    k = champion.k or card_k(labelled["customer_id"].nunique(), params.evaluation.k_per_5000_customers)
    live = measure_performance(labelled, champion.info.threshold, k)
    if champion.expected is not None:
        floor, rule = ap_floor(champion.expected, params.monitoring)
        change = compare(live, champion.expected) if live.measured else None
        live = live.model_copy(
            update={"expected": champion.expected, "floor": floor, "floor_rule": rule, "change": change}
        )
    if live.measured and html_path is not None:
        saved = save_performance_report(labelled, champion.info.threshold, html_path)
        live = live.model_copy(update={"html_path": saved})
    return live


def compare(live: LivePerformance, expected: Expected) -> PerformanceChange:
    """Live minus validation, for AP and for precision and recall at the threshold."""

    def change(measured: float | None, promised: float | None) -> float | None:
        return None if measured is None or promised is None else measured - promised

    return PerformanceChange(
        average_precision=change(live.average_precision, expected.average_precision),
        precision_at_threshold=change(live.precision_at_threshold, expected.precision),
        recall_at_threshold=change(live.recall_at_threshold, expected.recall),
    )


def decide_on(
    evidence: Evidence,
    expected: Expected | None,
    params: MonitoringParams,
    today: dt.date,
    last_retrain: dt.date | None,
) -> Decision:
    """The policy's decision on the evidence (see :mod:`monitoring.policy`)."""
    live = evidence.performance
    decision = decide(evidence.drift, live, expected, params, today, last_retrain, evidence.rows, live.frauds)
    log.info("monitoring %s: %s (%s)", today, decision.action, "; ".join(decision.reasons))
    return decision


def judge_window(
    champion: Champion,
    current: pd.DataFrame,
    labelled: pd.DataFrame,
    params: Params,
    today: dt.date,
    last_retrain: dt.date | None,
    report_dir: Path | None = None,
    step: Step = plain,
) -> tuple[Evidence, Decision]:
    """Gather the evidence on one window and apply the policy (reports under ``report_dir`` when given).

    Four stages, each run through ``step`` (the monitoring flow makes them Prefect tasks): data
    drift, prediction drift, live performance, decide.
    """

    def html(kind: str) -> Path | None:
        return report_dir / f"{today}-{kind}.html" if report_dir is not None else None

    monitoring = params.monitoring
    drift = step("data drift", check_drift, retry=False)(champion, current, monitoring, html("drift"))
    prediction = step("prediction drift", check_prediction_drift, retry=False)(
        champion, current, monitoring, html("prediction-drift")
    )
    live = step("live performance", check_performance, retry=False)(
        champion, labelled, params, html("performance")
    )
    if drift is not None:
        drift = drift.model_copy(update={"prediction": prediction})
    reports = ReportPaths(
        drift_html=drift.html_path if drift else None,
        prediction_drift_html=html("prediction-drift") if prediction else None,
        performance_html=live.html_path,
    )
    evidence = Evidence(len(current), drift, live, reports)
    decision = step("decide", decide_on, retry=False)(
        evidence, champion.expected, monitoring, today, last_retrain
    )
    return evidence, decision
