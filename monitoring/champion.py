"""The serving model as monitoring sees it: its metadata, its reference sample and what it promised.

Training logs the reference sample (rows of the training window with the model's score on each),
the chosen candidate's figures on its validation folds (average precision, precision and recall at
the threshold) and the stage's prequential folds (the recipe's AP on the newest labelled weeks).
Versions trained before those existed still work: their reference is scored here with the version's
own ONNX graph, and their test-window AP stands in for the expected AP (with the policy's fallback
floor, since there is no spread).
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.registry import (
    CHAMPION,
    REFERENCE_ARTIFACT,
    SCORE_COLUMN,
    ModelInfo,
    ModelNotFound,
    download_onnx,
    read_model_info,
    registry_client,
)
from core.settings import Settings
from monitoring.policy import Expected

log = logging.getLogger(__name__)

EXPECTED_AP_METRIC = "test_average_precision"  # versions without validation figures
PREQUENTIAL = "test_prequential_"  # the stage's prequential folds, as training logs them


@dataclass(frozen=True)
class Champion:
    """The serving model, the reference sample it was trained on and what its validation promised."""

    info: ModelInfo
    reference: pd.DataFrame | None  # the features, and SCORE_COLUMN when known
    expected: Expected | None
    k: int | None = None  # card precision@k's k of the champion's test (from the population size)


def read_champion(settings: Settings) -> Champion:
    """The champion's metadata, reference sample (with scores) and validation figures from MLflow."""
    from mlflow.exceptions import MlflowException

    client = registry_client(settings.tracking_uri)
    try:
        info = read_model_info(client, settings.model_name, CHAMPION)
    except MlflowException as exc:
        raise ModelNotFound(
            f"no {CHAMPION!r} version of model {settings.model_name!r}: train and promote one first"
        ) from exc
    metrics = client.get_run(info.run_id).data.metrics
    k = int(metrics["test_k"]) if "test_k" in metrics else None
    reference = download_reference(settings, info.run_id)
    if reference is not None and SCORE_COLUMN not in reference.columns:
        reference = score_reference(client, info, reference)
    return Champion(info, reference, expected_from_metrics(metrics), k)


def expected_from_metrics(metrics: dict[str, float]) -> Expected | None:
    """What a training run promised a live week: AP mean and spread over its folds, alerts at the threshold.

    The AP comes from the prequential folds when the run has at least two (the champion's recipe
    scored out of sample on the newest labelled weeks at training, the validation weeks among them),
    else from the validation folds; the spread is the folds' sample standard deviation (the stage logs
    a population one: rescaled here). Precision and recall at the threshold are the validation
    folds', the weeks the threshold was set on. Runs that predate these figures offer their test AP,
    without a spread.
    """
    precision = metrics.get(
        "validation_precision_at_threshold_mean", metrics.get("test_precision_at_threshold")
    )
    recall = metrics.get("validation_recall_at_threshold_mean", metrics.get("test_recall_at_threshold"))
    prequential = int(metrics.get(f"{PREQUENTIAL}folds", 0))
    if prequential >= 2 and f"{PREQUENTIAL}average_precision_std" in metrics:
        std = metrics[f"{PREQUENTIAL}average_precision_std"] * math.sqrt(prequential / (prequential - 1))
        mean = metrics[f"{PREQUENTIAL}average_precision_mean"]
        return Expected(mean, std, prequential, precision, recall, "prequential folds")
    if "validation_average_precision_mean" in metrics:
        folds = int(metrics.get("validation_folds", 1))
        spread = metrics.get("validation_average_precision_std") if folds >= 2 else None
        return Expected(metrics["validation_average_precision_mean"], spread, folds, precision, recall)
    if EXPECTED_AP_METRIC in metrics:
        return Expected(metrics[EXPECTED_AP_METRIC], None, 1, precision, recall, "test window")
    return None


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


def score_reference(client: Any, info: ModelInfo, reference: pd.DataFrame) -> pd.DataFrame:
    """The reference with the champion's scores from its ONNX graph (unchanged when there is no graph)."""
    from mlflow.exceptions import MlflowException

    from core.runtime import onnx_session, session_fraud_probability

    try:
        graph = download_onnx(client, info)
    except (ValueError, MlflowException, OSError) as exc:
        log.warning("version %s: reference not scored (%s): prediction drift not checked", info.version, exc)
        return reference
    features = reference[info.features].to_numpy(np.float32)
    return reference.assign(**{SCORE_COLUMN: session_fraud_probability(onnx_session(graph), features)})
