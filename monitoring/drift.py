"""Data drift between the champion's reference sample and the scored window, judged by Evidently.

Both frames use the model's plain feature names (``tx_amount``...). The prediction log stores the
same features as ``f_<name>`` (see :func:`core.predlog.prediction_columns`): callers pass logged
rows through :func:`features_from_log` first, so :func:`detect_drift` compares like with like and
its report shows the names the model uses.

The decisions are Evidently's, read from its test results: the ``DriftedColumnsCount`` test (share of
drifted columns less than ``drift_share``) fails when the dataset drifted, and each column's
``ValueDrift`` test fails when that column drifted. Nothing is recomputed here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from core.predlog import prediction_columns
from core.schemas import TRANSACTION_COLUMNS

log = logging.getLogger(__name__)

DRIFT_COUNT_METRIC = "evidently:metric_v2:DriftedColumnsCount"
VALUE_DRIFT_METRIC = "evidently:metric_v2:ValueDrift"


@dataclass(frozen=True)
class DriftResult:
    """Evidently's verdict on one window: dataset drift, its share and each column's test."""

    drifted: bool
    share: float
    drifted_columns: list[str]
    n_columns: int
    column_scores: dict[str, dict[str, Any]]
    html_path: Path
    drift_share: float = 0.5
    reference_rows: int = 0
    current_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        return {
            "drifted": self.drifted,
            "share": self.share,
            "drift_share": self.drift_share,
            "drifted_columns": self.drifted_columns,
            "n_columns": self.n_columns,
            "column_scores": self.column_scores,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "html_path": str(self.html_path),
        }


def log_feature_columns(features: list[str]) -> dict[str, str]:
    """Map each prediction-log feature column to the model's feature name."""
    logged = prediction_columns(features)[len(TRANSACTION_COLUMNS) : len(TRANSACTION_COLUMNS) + len(features)]
    return dict(zip(logged, features, strict=True))


def features_from_log(predictions: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The logged features of scored transactions, renamed to the model's feature names."""
    mapping = log_feature_columns(features)
    missing = sorted(set(mapping) - set(predictions.columns))
    if missing:
        raise KeyError(f"prediction log lacks feature columns {missing}: was it written by another model?")
    return predictions[list(mapping)].rename(columns=mapping)


def detect_drift(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], html_path: Path, drift_share: float
) -> DriftResult:
    """Run Evidently's DataDriftPreset on ``columns``, save its HTML report and return its verdict."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=columns)
    report = Report([DataDriftPreset(columns=columns, drift_share=drift_share)], include_tests=True)
    snapshot = report.run(
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    result = read_verdict(json.loads(snapshot.json()), html_path, drift_share)
    log.info(
        "drift: %d/%d columns drifted (share %.2f, dataset drift %s); report %s",
        len(result.drifted_columns),
        result.n_columns,
        result.share,
        result.drifted,
        html_path,
    )
    return replace(result, reference_rows=len(reference), current_rows=len(current))


def read_verdict(results: dict[str, Any], html_path: Path, drift_share: float) -> DriftResult:
    """Build a :class:`DriftResult` from ``snapshot.json()``: metric values and test statuses."""
    values = {m["id"]: m["value"] for m in results["metrics"]}
    dataset_drifted = False
    share: float | None = None
    column_scores: dict[str, dict[str, Any]] = {}
    for test in results["tests"]:
        config = test["metric_config"]
        status = _status(test)
        if config["params"]["type"] == DRIFT_COUNT_METRIC:
            dataset_drifted = status == "FAIL"
            share = float(values[config["metric_id"]]["share"])
        elif config["params"]["type"] == VALUE_DRIFT_METRIC:
            column_scores[config["params"]["column"]] = {
                "method": config["params"]["method"],
                "score": float(values[config["metric_id"]]),
                "threshold": float(config["params"]["threshold"]),
                "drifted": status == "FAIL",
            }
    if share is None:
        raise RuntimeError("Evidently's report has no DriftedColumnsCount test: cannot judge dataset drift")
    return DriftResult(
        drifted=dataset_drifted,
        share=share,
        drifted_columns=[c for c, s in column_scores.items() if s["drifted"]],
        n_columns=len(column_scores),
        column_scores=column_scores,
        html_path=html_path,
        drift_share=drift_share,
    )


def _status(test: dict[str, Any]) -> str:
    status = str(test["status"])
    if status not in ("SUCCESS", "FAIL"):
        raise RuntimeError(f"Evidently test {test['name']!r} ended {status}: {test.get('description', '')}")
    return status
