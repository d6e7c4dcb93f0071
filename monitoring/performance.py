"""Live performance from delayed labels: join scored transactions with their feedback and measure.

Only transactions whose labels have been released can be judged, so the monitor measures a window
that ends at :func:`core.clock.last_labelled_day`, not the newest scored days.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from core.metrics import evaluate_scores

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


def label_predictions(predictions: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Scored transactions that have a label (inner join on ``transaction_id``)."""
    if predictions.empty or feedback.empty:
        return pd.DataFrame(columns=LABELLED_COLUMNS)
    scored = predictions[[c for c in LABELLED_COLUMNS if c != "tx_fraud" and c in predictions.columns]]
    labels = feedback[["transaction_id", "tx_fraud"]].astype({"tx_fraud": "int64"})
    return scored.merge(labels, on="transaction_id", how="inner", validate="one_to_one")


def measure_performance(labelled: pd.DataFrame, threshold: float, k: int) -> dict[str, Any]:
    """Metrics of the logged scores on labelled rows, with their random baselines.

    Always returns ``rows``, ``frauds`` and ``measured``; when the rows cannot be judged (none, or a
    single class) ``measured`` is False and ``reason`` says why, otherwise the metrics of
    :func:`core.metrics.evaluate_scores` are included.
    """
    rows, frauds = len(labelled), int(labelled["tx_fraud"].sum()) if len(labelled) else 0
    summary: dict[str, Any] = {"rows": rows, "frauds": frauds, "measured": False, "reason": None}
    if rows == 0:
        summary["reason"] = "no labelled rows in the window"
    elif frauds in (0, rows):
        summary["reason"] = f"one class only ({frauds} frauds in {rows} labelled rows)"
    if summary["reason"]:
        log.info("performance not measured: %s", summary["reason"])
        return summary
    scores = labelled["fraud_probability"].to_numpy(dtype=float)
    metrics = evaluate_scores(labelled, scores, threshold, k)
    log.info(
        "live AP %.3f (random %.3f) on %d rows, %d frauds",
        metrics["average_precision"],
        metrics["average_precision_random"],
        rows,
        frauds,
    )
    return {**metrics, **summary, "rows": rows, "measured": True}
