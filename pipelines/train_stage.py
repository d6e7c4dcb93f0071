"""DVC stage ``train``: features -> a fitted model, its test metrics and its precision-recall curve.

The windows come from the data alone (the newest labelled week is the test window), so ``dvc repro``
reproduces the same model from the same data and parameters. ``fraudops train`` and the Prefect
training flow run this stage through DVC, then register its model in MLflow and gate it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import RootModel

from core.features import feature_names
from core.params import HyperParams, Params, load_params
from core.registry import SKOPS_TRUSTED_TYPES
from core.settings import get_settings
from pipelines.cluster import engine_client
from pipelines.export import export_checked
from pipelines.features import read_feature_table
from pipelines.plots import PR_CURVE_PNG, write_pr_curve
from pipelines.train import (
    NotEnoughData,
    Selection,
    Windows,
    evaluate_model,
    feature_matrix,
    fit_baseline,
    fit_model,
    last_labelled_in,
    plan_windows,
    prequential_windows,
    score_frame,
    select_model,
    split_windows,
)

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)
MODEL_FILE, ONNX_FILE, TRAINING_FILE = "model.skops", "model.onnx", "training.json"
METRICS_FILE, PR_CURVE_FILE = "metrics.json", "pr_curve.csv"
SUMMARY_KEYS = ("average_precision", "roc_auc", "card_precision_at_k")


class StageMetrics(RootModel[dict[str, float]]):
    """``metrics/metrics.json``: metric name -> value on the test window (``dvc metrics show`` reads it).

    The test metrics with their random baselines, the logistic baseline's (``baseline_*``), the
    prequential folds' means and spreads (``prequential_*``), the threshold and the ONNX check.
    """


@dataclass(frozen=True)
class TrainedModel:
    """The stage's outputs read back: the model, its windows and its test metrics."""

    model: Any
    windows: Windows
    metrics: dict[str, float]
    n_iter: int
    threshold: float
    hyperparameters: dict[str, float]
    training: dict[str, Any]  # training.json: windows, search candidates, threshold note, ONNX check
    onnx_path: Path


def pr_curve(y: np.ndarray, scores: np.ndarray, max_points: int = 500) -> pd.DataFrame:
    """Precision and recall at up to ``max_points`` thresholds (small enough for ``dvc plots``)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, scores)
    keep = np.unique(np.linspace(0, len(precision) - 1, min(max_points, len(precision))).astype(int))
    return pd.DataFrame({"recall": recall[keep].round(6), "precision": precision[keep].round(6)})


def compare_folds(
    table: pd.DataFrame,
    windows: Windows,
    params: Params,
    population: int,
    hyper: HyperParams,
    threshold: float,
    fitted: dict[str, Any] | None = None,
) -> dict[str, float]:
    """The model and the logistic baseline over the prequential folds: mean and std of each metric.

    Fold 0 is the protocol's own windows; each next fold moves train, gap and test back by one test
    window. The baseline's fold-0 metrics are also reported on their own. ``fitted`` holds models
    ("model", "baseline") already fitted on ``windows``' training rows: fold 0 uses them as they are
    (the same rows, parameters and seed would fit them again to the same trees).
    """
    features = feature_names(params.features)
    fits = {
        "model": lambda train: fit_model(train, params, hyper),
        "baseline": lambda train: fit_baseline(train, params),
    }
    runs: dict[str, list[dict[str, float]]] = {"model": [], "baseline": []}
    folds = prequential_windows(windows.test_end, params, table["tx_datetime"].min().date())
    for fold in folds:
        train, test = split_windows(table, fold)
        for name, fit in fits.items():
            reuse = fitted.get(name) if fitted is not None and fold == windows else None
            model = reuse if reuse is not None else fit(train)
            runs[name].append(evaluate_model(model, test, features, threshold, params, population))
    out: dict[str, float] = {"prequential_folds": float(len(folds))}
    out |= {f"baseline_{key}": runs["baseline"][0][key] for key in SUMMARY_KEYS}
    for name, results in runs.items():
        prefix = "prequential" if name == "model" else "baseline_prequential"
        for key in SUMMARY_KEYS:
            values = np.array([r[key] for r in results], dtype=float)
            out[f"{prefix}_{key}_mean"] = float(np.nanmean(values))
            out[f"{prefix}_{key}_std"] = float(np.nanstd(values))
    return out


@dataclass(frozen=True)
class StageResult:
    """The stage's work in memory, before anything is written."""

    model: Any
    windows: Windows
    selection: Selection
    metrics: dict[str, float]
    train: pd.DataFrame
    test: pd.DataFrame
    onnx_model: bytes | None  # the checked export (None when not asked for)
    baseline: Any = None  # the logistic baseline fitted on ``train`` (None without the folds)


def train_on_table(
    table: pd.DataFrame,
    params: Params,
    folds: bool = True,
    export: bool = True,
    threads: int | None = None,
    client: Client | None = None,
) -> StageResult:
    """The stage in memory: plan, search on the validation folds, fit, evaluate, compare folds, export.

    Training is a batch job: its fits use every core (or ``threads``), whatever ``OMP_NUM_THREADS``
    says for serving. On cores other processes keep busy, one thread can be much faster: OpenMP's
    threads wait for each other at every tree level. With a Dask ``client`` the search's fits run on
    its cluster instead (:func:`pipelines.train.select_model`).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads or os.cpu_count() or 1, user_api="openmp"):
        return _train_on_table(table, params, folds, export, client)


def _train_on_table(
    table: pd.DataFrame, params: Params, folds: bool, export: bool, client: Client | None
) -> StageResult:
    windows = plan_windows(last_labelled_in(table), params, first_day=table["tx_datetime"].min().date())
    train, test = split_windows(table, windows)
    selection = select_model(table, windows, params, client)
    model = fit_model(train, params, selection.hyper)
    features = feature_names(params.features)
    population = int(table["customer_id"].nunique())  # customers seen in all the data
    metrics = evaluate_model(model, test, features, selection.threshold, params, population)
    baseline = None
    if folds:
        baseline = fit_baseline(train, params)
        fitted = {"model": model, "baseline": baseline}
        metrics |= compare_folds(
            table, windows, params, population, selection.hyper, selection.threshold, fitted
        )
    metrics["threshold"] = selection.threshold
    onnx_model = None
    if export:  # refuses (raises) when the ONNX form disagrees with the model
        onnx_model, metrics["onnx_max_abs_diff"] = export_checked(
            model, feature_matrix(test, features).to_numpy()
        )
    return StageResult(model, windows, selection, metrics, train, test, onnx_model, baseline)


def run_stage(
    data_dir: Path, metrics_dir: Path, params: Params, client: Client | None = None
) -> TrainedModel:
    """Search on the validation folds (on ``client``'s cluster if given), fit, evaluate, export."""
    import skops.io as sio

    result = train_on_table(read_feature_table(data_dir), params, client=client)
    model, selection, metrics, test = result.model, result.selection, result.metrics, result.test
    assert result.onnx_model is not None  # asked for by default
    model_dir = data_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    sio.dump(model, model_dir / MODEL_FILE)
    (model_dir / ONNX_FILE).write_bytes(result.onnx_model)
    training = {
        "windows": {k: str(v) for k, v in result.windows.__dict__.items()},
        "n_iter": int(model.n_iter_),
        "hyperparameters": selection.hyper.model_dump(),
        "threshold": selection.threshold,
        "threshold_note": selection.threshold_note,
        "validation_folds": selection.folds,
        "validation": {"folds": selection.fold_metrics, **selection.validation_summary()},
        "search": selection.candidates,
        "onnx_max_abs_diff": metrics["onnx_max_abs_diff"],
    }
    (model_dir / TRAINING_FILE).write_text(json.dumps(training, indent=2), encoding="utf-8")
    finite = StageMetrics({k: round(v, 6) for k, v in metrics.items() if np.isfinite(v)})
    (metrics_dir / METRICS_FILE).write_text(finite.model_dump_json(indent=2), encoding="utf-8")
    features = feature_names(params.features)
    y, scores = test["tx_fraud"].to_numpy(), score_frame(model, test, features)
    pr_curve(y, scores).to_csv(metrics_dir / PR_CURVE_FILE, index=False)
    baseline = result.baseline if result.baseline is not None else fit_baseline(result.train, params)
    baseline_scores = score_frame(baseline, test, features)  # fold 0's baseline
    write_pr_curve(
        y, scores, baseline_scores, metrics_dir / PR_CURVE_PNG, result.windows.as_tags()["test_window"]
    )
    return _trained(model, metrics, training, model_dir / ONNX_FILE)


def _trained(
    model: Any, metrics: dict[str, float], training: dict[str, Any], onnx_path: Path
) -> TrainedModel:
    windows = Windows(**{k: dt.date.fromisoformat(v) for k, v in training["windows"].items()})
    return TrainedModel(
        model=model,
        windows=windows,
        metrics=metrics,
        n_iter=int(training["n_iter"]),
        threshold=float(training["threshold"]),
        hyperparameters=training["hyperparameters"],
        training=training,
        onnx_path=onnx_path,
    )


def read_stage(data_dir: Path, metrics_dir: Path) -> TrainedModel:
    """The outputs of the last ``dvc repro`` (the model loads only the types it is known to hold)."""
    import skops.io as sio

    model_dir = data_dir / "model"
    if not (model_dir / MODEL_FILE).exists():
        raise FileNotFoundError(f"{model_dir / MODEL_FILE} is missing: run `dvc repro` (or `fraudops train`)")
    model = sio.load(model_dir / MODEL_FILE, trusted=SKOPS_TRUSTED_TYPES)
    training = json.loads((model_dir / TRAINING_FILE).read_text(encoding="utf-8"))
    metrics = json.loads((metrics_dir / METRICS_FILE).read_text(encoding="utf-8"))
    return _trained(model, metrics, training, model_dir / ONNX_FILE)


def main() -> None:
    """Entry point of the DVC stage."""
    settings = get_settings()
    params = load_params(settings.project_dir / "params.yaml")
    try:
        with engine_client(settings) as client:  # FRAUDOPS_FEATURE_ENGINE=dask: the search on the cluster
            trained = run_stage(settings.data_dir, settings.project_dir / "metrics", params, client)
    except NotEnoughData as exc:
        log.error("train: %s", exc)
        raise SystemExit(1) from None
    ap, ap_random = trained.metrics["average_precision"], trained.metrics["average_precision_random"]
    log.info(
        "train: test %s, AP %.3f (random %.3f), %d trees, threshold %.4f (%s)",
        trained.windows.as_tags()["test_window"],
        ap,
        ap_random,
        trained.n_iter,
        trained.threshold,
        trained.training["threshold_note"],
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
