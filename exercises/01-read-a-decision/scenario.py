"""The monitoring run of exercise 1: the evidence the policy is given (not its decision).

``python exercises/01-read-a-decision/scenario.py`` prints it. The check builds the same objects.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from monitoring.drift import ColumnTest, DriftResult, PredictionDrift
from monitoring.performance import Expected, LivePerformance

TODAY = dt.date(2026, 3, 10)
LAST_RETRAIN = dt.date(2026, 3, 1)
ROWS = 3_120  # scored transactions in the 7-day window
LABELLED_FRAUDS = 35
DRIFTED = ["tx_amount", "customer_avg_amount_1d", "customer_avg_amount_7d", "customer_avg_amount_30d"]
COLUMNS = 15


def scenario() -> dict[str, Any]:
    """The keyword arguments of ``monitoring.policy.decide`` except ``params`` and ``today``."""
    columns = {
        f"column_{i}": ColumnTest(method="wasserstein", score=0.02, threshold=0.1, drifted=False)
        for i in range(COLUMNS - len(DRIFTED))
    } | {name: ColumnTest(method="wasserstein", score=0.31, threshold=0.1, drifted=True) for name in DRIFTED}
    drift = DriftResult(
        drifted=len(DRIFTED) / COLUMNS >= 0.5,
        share=len(DRIFTED) / COLUMNS,
        drifted_columns=DRIFTED,
        n_columns=COLUMNS,
        column_scores=columns,
        html_path=None,
        drift_share=0.5,
        prediction=PredictionDrift(
            column="fraud_probability", method="wasserstein", score=0.134, threshold=0.1, drifted=True
        ),
    )
    live = LivePerformance(
        rows=2_980,
        frauds=LABELLED_FRAUDS,
        measured=True,
        average_precision=0.52,
        average_precision_random=0.012,
    )
    expected = Expected(
        average_precision=0.70, average_precision_std=0.04, folds=4, source="prequential folds"
    )
    return {
        "drift": drift,
        "live": live,
        "expected": expected,
        "last_retrain": LAST_RETRAIN,
        "rows": ROWS,
        "labelled_frauds": LABELLED_FRAUDS,
    }


if __name__ == "__main__":
    evidence = scenario()
    drift, live, expected = evidence["drift"], evidence["live"], evidence["expected"]
    print(f"today (simulated)        {TODAY}")
    print(f"last retrain             {evidence['last_retrain']}")
    print(f"scored rows in window    {evidence['rows']}")
    print(f"labelled frauds          {evidence['labelled_frauds']}")
    print(
        f"dataset drift            {len(drift.drifted_columns)}/{drift.n_columns} columns drifted: "
        f"{', '.join(drift.drifted_columns)}"
    )
    print(
        f"prediction drift         {drift.prediction.method} {drift.prediction.score} "
        f"(threshold {drift.prediction.threshold})"
    )
    print(
        f"live AP                  {live.average_precision} (random baseline {live.average_precision_random})"
    )
    print(
        f"champion's promise       AP mean {expected.average_precision}, std {expected.average_precision_std} "
        f"over {expected.folds} {expected.source}"
    )
