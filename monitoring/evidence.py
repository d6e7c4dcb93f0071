"""One window judged: Evidently's drift reports, live performance against validation, the policy's decision.

Everything here works on frames already read, so the monitoring flow (which reads the prediction
log) and the false-alarm benchmark (which simulates its windows in memory) judge with the same code.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.metrics import card_k
from core.params import MonitoringParams, Params
from core.registry import SCORE_COLUMN
from monitoring.champion import Champion
from monitoring.drift import DriftConfig, DriftResult, detect_drift
from monitoring.performance import measure_performance, save_performance_report
from monitoring.policy import Decision, Expected, ap_floor, decide

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evidence:
    """What one monitoring run measured, and where its reports are."""

    rows: int
    drift: DriftResult | None
    performance: dict[str, Any]
    reports: dict[str, str | None] = field(default_factory=dict)


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
    """Evidently's verdict on the window's features and scores, or None without a reference or enough rows.

    ``current`` holds the model's features by name and, when scored, ``SCORE_COLUMN``.
    """
    if champion.reference is None or len(current) < params.min_rows:
        return None
    features = champion.info.features
    return detect_drift(
        champion.reference,
        current,
        features,
        html_path,
        config=drift_config(params),
        score_column=SCORE_COLUMN,
    )


def check_performance(
    champion: Champion, labelled: pd.DataFrame, params: Params, html_path: Path | None
) -> dict[str, Any]:
    """Live metrics on the labelled week, their change from the validation figures, and the alarm floor."""
    k = champion.k or card_k(labelled["customer_id"].nunique(), params.evaluation.k_per_5000_customers)
    live = measure_performance(labelled, champion.info.threshold, k)
    if champion.expected is not None:
        live["expected"] = champion.expected.to_dict()
        live["floor"], live["floor_rule"] = ap_floor(champion.expected, params.monitoring)
        if live["measured"]:
            live["change"] = compare(live, champion.expected)
    if live["measured"] and html_path is not None:
        live["html_path"] = str(save_performance_report(labelled, champion.info.threshold, html_path))
    return live


def compare(live: dict[str, Any], expected: Expected) -> dict[str, float | None]:
    """Live minus validation, for AP and for precision and recall at the threshold."""
    promised = {
        "average_precision": expected.average_precision,
        "precision_at_threshold": expected.precision,
        "recall_at_threshold": expected.recall,
    }
    return {key: None if value is None else float(live[key]) - value for key, value in promised.items()}


def judge_window(
    champion: Champion,
    current: pd.DataFrame,
    labelled: pd.DataFrame,
    params: Params,
    today: dt.date,
    last_retrain: dt.date | None,
    report_dir: Path | None = None,
) -> tuple[Evidence, Decision]:
    """Gather the evidence on one window and apply the policy (reports under ``report_dir`` when given)."""
    html = (
        (lambda kind: report_dir / f"{today}-{kind}.html") if report_dir is not None else (lambda kind: None)
    )
    drift = check_drift(champion, current, params.monitoring, html("drift"))
    live = check_performance(champion, labelled, params, html("performance"))
    decision = decide(
        drift,
        live,
        champion.expected,
        params.monitoring,
        today,
        last_retrain,
        len(current),
        live["frauds"],
    )
    log.info("monitoring %s: %s (%s)", today, decision.action, "; ".join(decision.reasons))
    reports = {
        "drift_html": str(drift.html_path) if drift and drift.html_path else None,
        "performance_html": live.get("html_path"),
    }
    return Evidence(len(current), drift, live, reports), decision
