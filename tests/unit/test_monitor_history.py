"""`fraudops monitor history` lists every decision with its evidence, reasons and retraining outcome."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from core.settings import Settings
from fraudops.cli import app
from monitoring.history import append_decision

runner = CliRunner()


@pytest.fixture(autouse=True)
def restore_environment() -> Iterator[None]:
    """The CLI sets tool variables (MLflow URI, Prefect home) for its process: undo them per test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_history_lists_decisions_in_order(project_settings: Settings) -> None:
    append_decision(
        project_settings,
        {
            "today": "2026-04-13",
            "model": {"version": "1"},
            "rows": 27_599,
            "drift_share": 0.0,
            "action": "none",
        }
        | {"prediction_drift": {"score": 0.031, "drifted": False}, "reasons": ["no dataset drift: 0/15"]}
        | {"performance": {"average_precision": 0.712, "floor": 0.301}, "retrain": None},
    )
    append_decision(
        project_settings,
        {
            "today": "2026-05-04",
            "model": {"version": "1"},
            "rows": 27_800,
            "drift_share": 0.13,
            "action": "retrain",
        }
        | {
            "prediction_drift": {"score": 0.021, "drifted": False},
            "reasons": ["performance drop: live AP 0.21"],
        }
        | {"performance": {"average_precision": 0.214, "floor": 0.301}}
        | {"retrain": {"started": True, "completed": True, "promoted": False, "version": "2"}},
    )
    result = runner.invoke(app, ["monitor", "history"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "2026-" in line and "│" in line]
    assert len(rows) == 2 and "2026-04-13" in rows[0] and "2026-05-04" in rows[1]
    assert "27,599" in rows[0] and "0.031" in rows[0] and "0.712 (—; 0.301)" in rows[0] and "none" in rows[0]
    assert "retrain" in rows[1] and "version 2, gate" in rows[1]
    reasons = [line.strip() for line in result.output.splitlines() if " — " in line and "│" not in line]
    assert reasons == [
        "2026-04-13 — none: no dataset drift: 0/15",
        "2026-05-04 — retrain: performance drop: live AP 0.21",
    ]
    words = " ".join(result.output.replace("│", " ").split())  # cells wrap within their column
    assert "kept the" in words and "champion" in words


def test_empty_history_is_an_empty_table(project_settings: Settings) -> None:
    result = runner.invoke(app, ["monitor", "history"])
    assert result.exit_code == 0 and "Monitoring decisions" in result.output
