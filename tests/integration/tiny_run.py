"""A tiny model and the run data training logs with it: what the tests against real MLflow servers
register (the same calls as training, in a second), instead of a trained fraud model."""

from __future__ import annotations

from typing import Any

import numpy as np


def tiny_model(seed: int) -> tuple[Any, np.ndarray, list[str]]:
    """A logistic regression fitted on 60 random rows of three features: (model, rows, feature names)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), x, ["a", "b", "c"]


def tiny_run_data(name: str, features: list[str]) -> dict[str, Any]:
    """What :func:`pipelines.tracking.log_run` takes besides the model, for a run named ``name``."""
    from pipelines.tracking import TAG_CYCLE

    return {
        "features": features,
        "threshold": 0.5,
        "label_delay_days": 7,
        "run_name": name,
        "params": {"C": 1.0},
        "metrics": {"average_precision": 1.0},
        "tags": {"data_version": "test", TAG_CYCLE: name},
    }
