"""Live performance from delayed labels: join scored transactions with their feedback and measure.

Only transactions whose labels have been released can be judged, so the monitor measures a window
that ends at :func:`core.clock.last_labelled_day`, not the newest scored days. The week is judged
as training judged its validation weeks: cards already known to be compromised (a labelled fraud
whose label had arrived by then) leave it, since their later frauds are the easiest to find and
would make a live week look better than the validation figures it is compared with.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict
from pydantic.dataclasses import dataclass

from core.params import Params

log = logging.getLogger(__name__)

LABELLED_COLUMNS = [
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "fraud_probability",
    "threshold",
    "model_version",
    "tx_fraud",
]


@dataclass(frozen=True)
class Expected:
    """What the champion promised at training: AP over its validation folds, and alerts at its threshold."""

    average_precision: float  # mean over the folds
    average_precision_std: float | None = None  # their sample standard deviation (None: no spread)
    folds: int = 1
    precision: float | None = None  # mean precision and recall at the threshold on the validation folds
    recall: float | None = None
    source: str = "validation folds"  # which folds (or "test window" for runs without folds)


class PerformanceChange(BaseModel):
    """Live minus validation, for AP and for precision and recall at the threshold (None: not promised)."""

    model_config = ConfigDict(frozen=True)

    average_precision: float | None
    precision_at_threshold: float | None
    recall_at_threshold: float | None


class LivePerformance(BaseModel):
    """The champion on its labelled week: counts, the metrics when measurable, and what it promised.

    ``measured`` is False (and ``reason`` says why) when the rows cannot be judged; the metrics are
    then None. ``expected``, ``floor`` and ``change`` are set when the champion recorded what it
    promised; ``scored_rows`` counts the week's scored transactions, labelled or not.
    """

    model_config = ConfigDict(frozen=True)

    rows: int
    frauds: int
    measured: bool
    reason: str | None = None
    average_precision: float | None = None
    average_precision_random: float | None = None
    roc_auc: float | None = None
    roc_auc_random: float | None = None
    card_precision_at_k: float | None = None
    card_precision_at_k_random: float | None = None
    card_precision_at_k_ceiling: float | None = None
    precision_at_threshold: float | None = None
    precision_at_threshold_random: float | None = None
    recall_at_threshold: float | None = None
    recall_at_threshold_random: float | None = None
    fraud_rate: float | None = None
    k: int | None = None
    expected: Expected | None = None
    floor: float | None = None  # the live AP below which performance has dropped
    floor_rule: str | None = None  # how the floor was set
    change: PerformanceChange | None = None
    html_path: Path | None = None  # Evidently's classification report
    scored_rows: int | None = None


def label_predictions(predictions: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Scored transactions that have a label (inner join on ``transaction_id``)."""
    if predictions.empty or feedback.empty:
        return pd.DataFrame(columns=LABELLED_COLUMNS)
    scored = predictions[[c for c in LABELLED_COLUMNS if c != "tx_fraud" and c in predictions.columns]]
    labels = feedback[["transaction_id", "tx_fraud"]].astype({"tx_fraud": "int64"})
    return scored.merge(labels, on="transaction_id", how="inner", validate="one_to_one")


def lookback_start(start: dt.date, params: Params) -> dt.date:
    """First day whose frauds can mark a card as known in a labelled window starting on ``start``."""
    return start - dt.timedelta(days=params.evaluation.gap_days + params.evaluation.train_days)


def drop_known_cards(labelled: pd.DataFrame, start: dt.date, end: dt.date, params: Params) -> pd.DataFrame:
    """The labelled rows of [start, end] minus those of cards already known to be compromised.

    ``labelled`` reaches back to :func:`lookback_start`; the rule is training's own
    (:func:`pipelines.train.drop_known_compromised`), applied as if [start, end] were a test week.
    """
    from pipelines.train import Windows, drop_known_compromised

    if labelled.empty:
        return labelled
    gap = dt.timedelta(days=params.evaluation.gap_days + 1)
    windows = Windows(lookback_start(start, params), start - gap, start, end)
    days = labelled["tx_datetime"].dt.date
    week = labelled[(days >= start) & (days <= end)]
    return drop_known_compromised(labelled, windows, week)


def measure_performance(labelled: pd.DataFrame, threshold: float, k: int) -> LivePerformance:
    """Metrics of the logged scores on labelled rows, with their random baselines.

    When the rows cannot be judged (none, or a single class) ``measured`` is False and ``reason``
    says why, otherwise the metrics of :func:`core.metrics.evaluate_scores` are included.
    """
    rows, frauds = len(labelled), int(labelled["tx_fraud"].sum()) if len(labelled) else 0
    reason = None
    if rows == 0:
        reason = "no labelled rows in the window"
    elif frauds in (0, rows):
        reason = f"one class only ({frauds} frauds in {rows} labelled rows)"
    if reason:
        log.info("performance not measured: %s", reason)
        return LivePerformance(rows=rows, frauds=frauds, measured=False, reason=reason)
    scores = labelled["fraud_probability"].to_numpy(dtype=float)
    from core.metrics import evaluate_scores  # scikit-learn: only when something is measured

    metrics = evaluate_scores(labelled, scores, threshold, k)
    log.info(
        "live AP %.3f (random %.3f) on %d rows, %d frauds",
        metrics["average_precision"],
        metrics["average_precision_random"],
        rows,
        frauds,
    )
    return LivePerformance.model_validate(
        {**metrics, "rows": rows, "frauds": frauds, "measured": True, "k": k}
    )


def save_performance_report(labelled: pd.DataFrame, threshold: float, html_path: Path) -> Path:
    """Evidently's classification report of the labelled week at the model's threshold (HTML)."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    frame = labelled[["tx_fraud", "fraud_probability"]].astype(
        {"tx_fraud": "int64", "fraud_probability": float}
    )
    definition = DataDefinition(
        classification=[
            BinaryClassification(target="tx_fraud", prediction_probas="fraud_probability", pos_label=1)
        ],
        numerical_columns=["fraud_probability"],
    )
    snapshot = Report([ClassificationPreset(probas_threshold=threshold)]).run(
        current_data=Dataset.from_pandas(frame, data_definition=definition), reference_data=None
    )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    return html_path
