"""One training cycle: reproduce the data, train a candidate, judge it against the champion, register.

Used by ``fraudops train``, the Prefect training flow and the retraining the monitor triggers, so
every path runs the same code. The alias moves last: a failure anywhere leaves the champion as it was.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.features import feature_names
from core.params import Params
from core.registry import CHAMPION, MISSING_CODES, SCORE_COLUMN, ModelInfo, load_model, read_model_info
from core.settings import Settings
from pipelines.features import read_feature_table
from pipelines.gate import GateDecision, apply_decision, judge
from pipelines.report import save_confusion, save_curves, save_importance, write_model_card
from pipelines.tracking import client_for, git_commit, log_and_register, use_store
from pipelines.train import (
    Windows,
    evaluate_model,
    score_frame,
    split_windows,
)
from pipelines.train_stage import TrainedModel, read_stage
from pipelines.versioning import data_version, reproduce

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingOutcome:
    """What one training cycle produced and what the gate decided."""

    version: str
    alias: str
    decision: GateDecision
    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    previous_champion: str | None
    windows: Windows
    data_version: str
    run_id: str
    reason: str


def current_champion(client: Any, name: str) -> tuple[ModelInfo, Any] | None:
    """The serving model and its metadata, or None before the first promotion."""
    from mlflow.exceptions import MlflowException

    try:
        info = read_model_info(client, name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code not in MISSING_CODES:
            raise  # an unreachable registry is not an empty one: the gate must not judge a "first" model
        return None
    return info, load_model(info)


def write_report(
    folder: Path, model: Any, test: pd.DataFrame, run_data: dict[str, Any], params: Params
) -> list[Path]:
    """Curves, confusion matrix, importances and the model card for the run's artifacts."""
    features, threshold = run_data["features"], run_data["threshold"]
    y, scores = test["tx_fraud"].to_numpy(), score_frame(model, test, features)
    return [
        *save_curves(y, scores, folder, run_data["tags"]["test_window"]),
        *save_confusion(y, scores, threshold, folder),
        *save_importance(model, test, features, folder, params.seed),
        write_model_card(run_data, folder),
    ]


def reference_sample(model: Any, train: pd.DataFrame, features: list[str], params: Params) -> pd.DataFrame:
    """Rows of the training window monitoring compares live windows with: features and the model's score.

    The scores are the model's own on rows it was trained on; the prediction-drift check compares the
    live score distribution with them (genuine rows, nearly all of them, score alike in and out of sample).
    """
    sample = train[features].sample(
        n=min(len(train), params.monitoring.reference_rows), random_state=params.seed
    )
    return sample.assign(**{SCORE_COLUMN: score_frame(model, sample, features)})


def run_training(settings: Settings, params: Params, reason: str) -> TrainingOutcome:
    """Reproduce the DVC stages, train, evaluate both models on the held-out window, register, gate."""
    if not any(settings.raw_dir.glob("*.parquet")):
        raise FileNotFoundError(
            f"no data in {settings.raw_dir}: run `fraudops simulate --out DIR` and `fraudops ingest DIR` first"
        )
    reproduce(settings.project_dir)  # validate -> features -> train: the stage fits the model
    table = read_feature_table(settings.data_dir)
    trained = read_stage(settings.data_dir, settings.project_dir / "metrics")
    model, windows = trained.model, trained.windows
    train, test = split_windows(table, windows)
    features = feature_names(params.features)
    population = int(table["customer_id"].nunique())  # customers seen in all the data: k as in the stage
    metrics = evaluate_model(model, test, features, trained.threshold, params, population)
    use_store(settings)  # the champion is loaded through MLflow's process-wide URIs
    client = client_for(settings)
    champion = current_champion(client, settings.model_name)
    champion_metrics = None
    if champion is not None:
        info, champ_model = champion
        champion_metrics = evaluate_model(
            champ_model, test, info.features, info.threshold, params, population
        )
    decision = judge(metrics, champion_metrics, params.gate)
    version_of_data = data_version(settings.project_dir)
    run_data = _run_data(
        settings, params, reason, trained, metrics, champion_metrics, decision, version_of_data
    )
    reference = reference_sample(model, train, features, params)
    with tempfile.TemporaryDirectory() as tmp:
        report = write_report(Path(tmp), model, test, run_data, params)
        training_json = Path(tmp) / "training.json"  # search candidates, threshold note, windows
        training_json.write_text(json.dumps(trained.training, indent=2), encoding="utf-8")
        report.append(training_json)
        registered = log_and_register(
            settings, model, run_data, reference, report, trained.onnx_path.read_bytes()
        )
    alias = apply_decision(client, settings.model_name, registered.version, decision)
    return TrainingOutcome(
        version=registered.version,
        alias=alias,
        decision=decision,
        metrics=metrics,
        champion_metrics=champion_metrics,
        previous_champion=champion[0].version if champion else None,
        windows=windows,
        data_version=version_of_data,
        run_id=registered.run_id,
        reason=reason,
    )


def _run_data(
    settings: Settings,
    params: Params,
    reason: str,
    trained: TrainedModel,
    metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    decision: GateDecision,
    version_of_data: str,
) -> dict[str, Any]:
    windows = trained.windows
    logged = {f"test_{k}": v for k, v in metrics.items()}
    logged |= {  # the stage's comparisons: logistic baseline and prequential folds
        f"test_{k}": float(v)
        for k, v in trained.metrics.items()
        if k.startswith(("baseline_", "prequential_"))
    }
    # the chosen candidate on the validation folds: what monitoring expects of a live week
    logged |= {k: float(v) for k, v in trained.training.get("validation", {}).items() if k != "folds"}
    logged |= {
        "n_iter": float(trained.n_iter),
        "threshold": trained.threshold,
        "test_onnx_max_abs_diff": float(trained.training["onnx_max_abs_diff"]),  # unrounded
    }
    if champion_metrics:
        logged |= {f"champion_{k}": v for k, v in champion_metrics.items()}
    return {
        "run_name": f"train-{windows.test_end}",
        "features": feature_names(params.features),
        "threshold": trained.threshold,
        "threshold_note": trained.training["threshold_note"],
        "label_delay_days": params.data.label_delay_days,
        "params": {
            **trained.hyperparameters,  # the search's choice
            **{f"search.{k}": str(v) for k, v in params.model.search.items()},
            "validation_folds": params.model.validation_folds,
            **{f"threshold.{k}": v for k, v in params.model.threshold.model_dump().items()},
            **params.evaluation.model_dump(),
            "seed": params.seed,
        },
        "metrics": {k: float(v) for k, v in logged.items() if np.isfinite(v)},
        "tags": {
            **windows.as_tags(),
            "reason": reason,
            "git_commit": git_commit(settings.project_dir),
            "data_version": version_of_data,
            "features": ",".join(feature_names(params.features)),
            "gate.promote": str(decision.promote),
            "gate.reasons": " | ".join(decision.reasons),
        },
    }
