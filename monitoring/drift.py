"""Data drift between the champion's reference sample and the scored window, judged by Evidently.

Both frames use the model's plain feature names (``tx_amount``...). The prediction log stores the
same features as ``f_<name>`` (see :func:`core.predlog.prediction_columns`): callers pass logged
rows through :func:`features_from_log` first, so :func:`detect_drift` compares like with like and
its report shows the names the model uses.

The decisions are Evidently's, read from its test results: the ``DriftedColumnsCount`` test (share of
drifted columns less than ``drift_share``) fails when the dataset drifted, and each column's
``ValueDrift`` test fails when that column drifted. Nothing is recomputed here.

Prediction drift is one more ``ValueDrift`` in the same report, on the model's score: the window's
scores against the scores of the reference rows. It is kept out of the share of drifted features.

Without an HTML report to save (the false-alarm benchmark judges hundreds of windows), the same
Evidently tests run directly, column by column, without building the report's charts: the same
verdicts, about ten times faster (a test checks that both ways agree).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from core.predlog import prediction_columns
from core.schemas import TRANSACTION_COLUMNS

log = logging.getLogger(__name__)

DRIFT_COUNT_METRIC = "evidently:metric_v2:DriftedColumnsCount"
VALUE_DRIFT_METRIC = "evidently:metric_v2:ValueDrift"


@dataclass(frozen=True)
class DriftConfig:
    """How Evidently judges drift: the dataset's share, per-column methods and thresholds, the score's test.

    A method or threshold not named for a column is Evidently's default (Wasserstein distance, normed,
    0.1 for numerical columns above 1,000 reference rows; Jensen-Shannon distance for five values or
    fewer; KS or chi-squared below 1,000 rows).
    """

    drift_share: float = 0.5
    methods: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    score_method: str | None = None
    score_threshold: float | None = None


class ColumnTest(BaseModel):
    """Evidently's drift test on one column: its method, score, threshold and verdict."""

    model_config = ConfigDict(frozen=True)

    method: str
    score: float
    threshold: float
    drifted: bool


class PredictionDrift(ColumnTest):
    """The drift test on the model's score column (prediction drift)."""

    column: str


class DriftResult(BaseModel):
    """Evidently's verdict on one window: dataset drift, its share and each column's test."""

    model_config = ConfigDict(frozen=True)

    drifted: bool
    share: float
    drifted_columns: list[str]
    n_columns: int
    column_scores: dict[str, ColumnTest]
    html_path: Path | None
    drift_share: float = 0.5
    reference_rows: int = 0
    current_rows: int = 0
    prediction: PredictionDrift | None = None  # the score's ValueDrift test (None: not checked)


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
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    html_path: Path | None,
    drift_share: float = 0.5,
    config: DriftConfig | None = None,
    score_column: str | None = None,
) -> DriftResult:
    """Run Evidently's DataDriftPreset on ``columns`` (and ValueDrift on ``score_column``); return its verdict.

    ``config`` (methods, thresholds, share) overrides ``drift_share``. The HTML report is saved at
    ``html_path``; without one, :func:`test_columns` reaches the same verdict without the report.
    The score is checked only when both frames have ``score_column``.
    """
    config = config or DriftConfig(drift_share=drift_share)
    if html_path is None:
        result = test_columns(reference, current, columns, config, score_column)
        return result.model_copy(update={"reference_rows": len(reference), "current_rows": len(current)})
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    checked = [*columns]
    metrics: list[Any] = [
        DataDriftPreset(
            columns=columns,
            drift_share=config.drift_share,
            per_column_method={c: m for c, m in config.methods.items() if c in columns} or None,
            per_column_threshold={c: t for c, t in config.thresholds.items() if c in columns} or None,
        )
    ]
    if score_column and score_column in reference.columns and score_column in current.columns:
        checked.append(score_column)
        metrics.append(
            ValueDrift(column=score_column, method=config.score_method, threshold=config.score_threshold)
        )
    definition = DataDefinition(numerical_columns=checked)
    snapshot = Report(metrics, include_tests=True).run(
        current_data=Dataset.from_pandas(current[checked], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[checked], data_definition=definition),
    )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    result = read_verdict(json.loads(snapshot.json()), html_path, config.drift_share, score_column)
    scores = "" if result.prediction is None else f", prediction drift {result.prediction.drifted}"
    log.info(
        "drift: %d/%d columns drifted (share %.2f, dataset drift %s)%s; report %s",
        len(result.drifted_columns),
        result.n_columns,
        result.share,
        result.drifted,
        scores,
        html_path,
    )
    return result.model_copy(update={"reference_rows": len(reference), "current_rows": len(current)})


def test_columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    config: DriftConfig,
    score_column: str | None = None,
) -> DriftResult:
    """The report's verdict without the report: Evidently's drift test on each column, then the share.

    Each column gets the method and threshold the report would give it (configured, else Evidently's
    default for its size), on the same cleaned values (infinities and missing values dropped).
    """
    import numpy as np
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    score = score_column if score_column in reference.columns and score_column in current.columns else None
    column_scores: dict[str, ColumnTest] = {}
    for column in [*columns, *([score] if score else [])]:
        is_score = column == score
        method = config.score_method if is_score else config.methods.get(column)
        threshold = config.score_threshold if is_score else config.thresholds.get(column)
        ref, cur = (
            frame[column].replace([-np.inf, np.inf], np.nan).dropna() for frame in (reference, current)
        )
        test = get_stattest(ref, cur, ColumnType.Numerical, method)
        outcome = test(ref, cur, ColumnType.Numerical, threshold)
        column_scores[column] = ColumnTest(
            method=method or test.display_name,
            score=float(outcome.drift_score),
            threshold=float(outcome.actual_threshold),
            drifted=bool(outcome.drifted),
        )
    prediction = column_scores.pop(score) if score else None
    drifted = [c for c, test in column_scores.items() if test.drifted]
    share = len(drifted) / len(column_scores)
    return DriftResult(
        drifted=share >= config.drift_share,  # Evidently's test: the share must stay below drift_share
        share=share,
        drifted_columns=drifted,
        n_columns=len(column_scores),
        column_scores=column_scores,
        html_path=None,
        drift_share=config.drift_share,
        prediction=None if prediction is None else as_prediction(prediction, score),
    )


def as_prediction(test: ColumnTest, column: str | None) -> PredictionDrift:
    """A column's test as the verdict on the model's score."""
    return PredictionDrift(**test.model_dump(), column=str(column))


def read_verdict(
    results: dict[str, Any], html_path: Path | None, drift_share: float, score_column: str | None = None
) -> DriftResult:
    """Build a :class:`DriftResult` from ``snapshot.json()``: metric values and test statuses."""
    values = {m["id"]: m["value"] for m in results["metrics"]}
    dataset_drifted = False
    share: float | None = None
    column_scores: dict[str, ColumnTest] = {}
    for test in results["tests"]:
        config = test["metric_config"]
        status = status_of(test)
        if config["params"]["type"] == DRIFT_COUNT_METRIC:
            dataset_drifted = status == "FAIL"
            share = float(values[config["metric_id"]]["share"])
        elif config["params"]["type"] == VALUE_DRIFT_METRIC:
            column_scores[config["params"]["column"]] = ColumnTest(
                method=config["params"]["method"],
                score=float(values[config["metric_id"]]),
                threshold=float(config["params"]["threshold"]),
                drifted=status == "FAIL",
            )
    if share is None:
        raise RuntimeError("Evidently's report has no DriftedColumnsCount test: cannot judge dataset drift")
    prediction = column_scores.pop(score_column, None) if score_column else None
    return DriftResult(
        drifted=dataset_drifted,
        share=share,
        drifted_columns=[c for c, s in column_scores.items() if s.drifted],
        n_columns=len(column_scores),
        column_scores=column_scores,
        html_path=html_path,
        drift_share=drift_share,
        prediction=None if prediction is None else as_prediction(prediction, score_column),
    )


def status_of(test: dict[str, Any]) -> str:
    status = str(test["status"])
    if status not in ("SUCCESS", "FAIL"):
        raise RuntimeError(f"Evidently test {test['name']!r} ended {status}: {test.get('description', '')}")
    return status
