"""Typed access to ``params.yaml``: model, data and policy parameters (one value, one place)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, model_validator


class DataParams(BaseModel):
    label_delay_days: int


class FeatureParams(BaseModel):
    customer_windows_days: list[int]
    terminal_windows_days: list[int]
    night_end_hour: int


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


class MonitoringParams(BaseModel):
    window_days: int
    min_rows: int
    drift_share: float
    reference_rows: int
    ap_drop: float
    min_labelled_frauds: int
    cooldown_days: int


class Params(BaseModel):
    seed: int
    data: DataParams
    features: FeatureParams
    evaluation: EvaluationParams
    model: ModelParams
    gate: GateParams
    monitoring: MonitoringParams


def load_params(path: Path) -> Params:
    """Read ``params.yaml`` (every key is required: the file is the one place these values live)."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: run fraudops from the project folder or set FRAUDOPS_PROJECT_DIR"
        )
    return Params.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
