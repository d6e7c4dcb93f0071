"""Typed access to ``params.yaml``: model, data and policy parameters (one value, one place)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel


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


class ModelParams(BaseModel):
    learning_rate: float
    max_iter: int
    max_leaf_nodes: int
    min_samples_leaf: int
    l2_regularization: float
    class_weight: Literal["balanced"] | None
    threshold: float


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
