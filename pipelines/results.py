"""The training cycle's results as types: light to import (no scikit-learn, MLflow or Prefect).

What crosses from the pipelines to monitoring, the command line and the demo: the windows a model was
trained and tested on, and the outcome of a training cycle with the gate's decision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from pipelines.gate import GateDecision


@dataclass(frozen=True)
class Windows:
    """Inclusive day ranges of the training and test windows."""

    train_start: dt.date
    train_end: dt.date
    test_start: dt.date
    test_end: dt.date

    def as_tags(self) -> dict[str, str]:
        return {
            "train_window": f"{self.train_start}..{self.train_end}",
            "test_window": f"{self.test_start}..{self.test_end}",
        }


class TrainingOutcome(BaseModel):
    """What one training cycle produced and what the gate decided (``reports/training/v<version>.json``)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    version: str
    """The registered model version."""
    alias: str
    """``champion`` when the gate promoted it, else ``challenger``."""
    decision: GateDecision
    """The gate's verdict and its reasons."""
    metrics: dict[str, float]
    """Metric name -> value on the test window, with the random baselines (``*_random``)."""
    champion_metrics: dict[str, float] | None
    """The previous champion's metrics on the same window (None for a first model)."""
    previous_champion: str | None
    """The champion's version when the cycle started."""
    windows: Windows
    """The training and test windows (inclusive days)."""
    data_version: str
    """The DVC hashes of the raw days and labels the model was trained on."""
    run_id: str
    """The MLflow run (params, metrics, report, reference sample, model)."""
    cycle_id: str
    """The training cycle: run again with this id, a failed cycle registers no second version."""
    reason: str
    """Why the cycle ran (``manual``, or the monitor's reasons)."""
