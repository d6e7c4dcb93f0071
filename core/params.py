"""Typed access to ``params.yaml``: model, data and policy parameters (one value, one place)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, model_validator


class DataParams(BaseModel):
    label_delay_days: int


class FeatureParams(BaseModel):
    customer_windows_days: list[int]
    terminal_windows_days: list[int]
    night_end_hour: int


# The feature columns' names live beside the parameters that define them: the features
# (core.features, core.online) and the checks below both name columns from these.
TRANSACTION_FEATURES = ("tx_amount", "tx_during_weekend", "tx_during_night")


def customer_window_features(days: int) -> tuple[str, str]:
    """A customer window's columns: (transaction count, mean amount) over ``days`` days."""
    return f"customer_nb_tx_{days}d", f"customer_avg_amount_{days}d"


def terminal_window_features(days: int) -> tuple[str, str]:
    """A terminal window's columns: (transaction count, fraud rate) over ``days`` days, label-delayed."""
    return f"terminal_nb_tx_{days}d", f"terminal_risk_{days}d"


def feature_names(params: FeatureParams) -> list[str]:
    """Column names in model order: the transaction's own, then customer windows, then terminal ones."""
    names = list(TRANSACTION_FEATURES)
    for days in params.customer_windows_days:
        names += customer_window_features(days)
    for days in params.terminal_windows_days:
        names += terminal_window_features(days)
    return names


class EvaluationParams(BaseModel):
    train_days: int
    gap_days: int
    test_days: int
    k_per_5000_customers: int
    prequential_folds: int


class HyperParams(BaseModel):
    """HistGradientBoosting's hyperparameters; ``fraud_weight`` weighs fraud rows against genuine ones."""

    learning_rate: float
    max_iter: int
    max_leaf_nodes: int
    min_samples_leaf: int
    l2_regularization: float
    fraud_weight: float


class ThresholdParams(BaseModel):
    """The decision threshold's target, met on the validation folds' scores."""

    objective: Literal["precision", "cost"]
    target_precision: float  # precision: the lowest threshold whose alerts reach this precision
    missed_fraud_cost: float  # cost: a missed fraud costs this much ...
    review_cost: float  # ... and every alert costs a review


class ModelParams(BaseModel):
    hyperparameters: HyperParams
    search: dict[str, list[float]]  # a grid over some hyperparameters, judged on the validation folds
    validation_folds: int
    baseline_class_weight: Literal["balanced"] | None
    threshold: ThresholdParams

    @model_validator(mode="after")
    def _search_names_hyperparameters(self) -> ModelParams:
        unknown = sorted(set(self.search) - set(HyperParams.model_fields))
        if unknown:
            raise ValueError(f"model.search names unknown hyperparameters {unknown}")
        if any(not values for values in self.search.values()):
            raise ValueError("model.search: every hyperparameter needs at least one value")
        return self

    def candidates(self) -> list[HyperParams]:
        """Every combination of the grid (the fixed hyperparameters when the grid is empty)."""
        names = list(self.search)
        combos = itertools.product(*(self.search[name] for name in names))
        return [
            HyperParams.model_validate(
                self.hyperparameters.model_dump() | dict(zip(names, combo, strict=True))
            )
            for combo in combos
        ]


class GateParams(BaseModel):
    ap_margin: float
    cpk_tolerance: float
    first_model_ap_margin: float


# Evidently's drift methods for numerical columns (the monitor declares every feature numerical);
# tests/unit/test_monitoring_policy.py checks this list against Evidently's registry
DRIFT_METHODS = frozenset(
    {
        "anderson",
        "cramer_von_mises",
        "ed",
        "empirical_mmd",
        "es",
        "hellinger",
        "jensenshannon",
        "kl_div",
        "ks",
        "mannw",
        "psi",
        "t_test",
        "wasserstein",
    }
)


class MonitoringParams(BaseModel):
    """The monitor's policy: window, minimum evidence, drift tests, performance floor, cool-down."""

    window_days: int = Field(ge=1)
    min_rows: int = Field(ge=1)
    drift_share: float = Field(gt=0, le=1)
    drift_methods: dict[str, str]  # column -> Evidently method, where its default does not fit
    drift_thresholds: dict[str, float]  # column -> that method's threshold
    prediction_drift_method: str
    prediction_drift_threshold: float = Field(gt=0)
    prediction_drift_retrains: bool
    reference_rows: int = Field(ge=1)
    ap_drop_std: float = Field(gt=0)
    ap_drop: float = Field(ge=0)
    min_labelled_frauds: int = Field(ge=1)
    cooldown_days: int = Field(ge=0)
    retry_backoff_days: int = Field(ge=0)
    max_retrain_failures: int = Field(ge=1)

    @model_validator(mode="after")
    def _methods_exist(self) -> MonitoringParams:
        methods = [*self.drift_methods.values(), self.prediction_drift_method]
        unknown = sorted(set(methods) - DRIFT_METHODS)
        if unknown:
            raise ValueError(
                f"monitoring: unknown drift method(s) {unknown}: choose from {', '.join(sorted(DRIFT_METHODS))}"
            )
        if any(value <= 0 for value in self.drift_thresholds.values()):
            raise ValueError("monitoring.drift_thresholds: every threshold must be above 0")
        return self


class Params(BaseModel):
    seed: int
    data: DataParams
    features: FeatureParams
    evaluation: EvaluationParams
    model: ModelParams
    gate: GateParams
    monitoring: MonitoringParams

    @model_validator(mode="after")
    def _monitored_columns_are_features(self) -> Params:
        named = set(self.monitoring.drift_methods) | set(self.monitoring.drift_thresholds)
        unknown = sorted(named - set(feature_names(self.features)))
        if unknown:
            raise ValueError(
                f"monitoring: drift_methods/drift_thresholds name columns that are not features: {unknown}"
            )
        return self


def load_params(path: Path) -> Params:
    """Read ``params.yaml`` (every key is required: the file is the one place these values live)."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: run fraudops from the project folder or set FRAUDOPS_PROJECT_DIR"
        )
    return Params.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
