"""The record of one monitoring run: what was judged, on which windows, the decision and its retraining.

:class:`MonitoringSummary` is what :func:`monitoring.flow.run_monitoring` returns, what the CLI and the
demo print, and what ``reports/monitoring/<day>-summary.json`` and each line of the history are
dumped from (``model_dump_json``) and read back into. A run that retrains writes two history lines:
one as the retraining starts (``retrain.finished`` false), one when it ends; a started line that no
finished line follows is a retraining that crashed before it could be recorded.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from monitoring.drift import DriftResult
from monitoring.performance import LivePerformance
from monitoring.policy import Decision
from pipelines.results import TrainingOutcome


class DateWindow(BaseModel):
    """An inclusive range of simulated days."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    start: dt.date
    end: dt.date


class MonitoringWindows(BaseModel):
    """The scored window (drift) and the labelled week (performance), which ends a label delay earlier."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    data: DateWindow
    labelled: DateWindow


class ModelRef(BaseModel):
    """The champion the run judged."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    name: str
    version: str
    run_id: str
    threshold: float


class ReportPaths(BaseModel):
    """Where the run's reports are (None: not written, e.g. too few rows or no labels)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    drift_html: Path | None = None
    prediction_drift_html: Path | None = None
    performance_html: Path | None = None
    summary_json: Path | None = None


class RetrainOutcome(BaseModel):
    """What the retraining the monitor started came to (``outcome``: the training cycle's own record)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    started: bool
    completed: bool = False
    promoted: bool = False
    """Whether the gate made the new version the champion."""
    version: str | None = None
    """The registered version (None: the retraining did not complete)."""
    error: str | None = None
    """The exception, when the retraining failed."""
    note: str | None = None
    """Why it did not start."""
    outcome: TrainingOutcome | None = None
    """The training cycle's own record."""
    attempt: str | None = None
    """Names the retraining: its started line and its finished line in the history share it."""
    finished: bool = True
    """False on the line written as the retraining starts."""


class MonitoringSummary(BaseModel):
    """One monitoring run: its windows, the champion, the evidence, the decision and the retraining."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    run_at: dt.datetime
    """When the run happened (UTC, wall clock)."""
    today: dt.date
    """The simulated day judged."""
    windows: MonitoringWindows
    """The scored window (drift) and the labelled week (performance)."""
    rows: int
    """Scored transactions in the data window."""
    model: ModelRef
    """The champion judged."""
    drift: DriftResult | None
    """None: no reference sample or too few rows."""
    performance: LivePerformance
    """Live metrics on the labelled week against what the champion promised."""
    decision: Decision
    """The policy's action and its reasons."""
    retrain: RetrainOutcome | None
    """None: the decision was not to retrain."""
    reports: ReportPaths
    """Where the HTML reports and this summary were written."""
    mlflow_run_id: str | None = None
    """None until logged, or when MLflow could not be reached."""
    retrain_failures: int = 0
    """Retrainings in a row that did not complete, this run's included (0 once one completes)."""
