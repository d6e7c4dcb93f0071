"""`fraudops monitor history` lists every decision with its evidence, reasons and retraining outcome."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from core.settings import Settings
from fraudops.cli import app
from monitoring.drift import DriftResult, PredictionDrift
from monitoring.history import append_decision
from monitoring.performance import LivePerformance
from monitoring.summary import (
    RetrainOutcome,
)
from tests.conftest import monitoring_summary

runner = CliRunner()


@pytest.fixture(autouse=True)
def restore_environment() -> Iterator[None]:
    """The CLI sets tool variables (MLflow URI, Prefect home) for its process: undo them per test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def drift_with_score(share: float, score: float) -> DriftResult:
    test = PredictionDrift(
        column="fraud_probability", method="wasserstein", score=score, threshold=0.1, drifted=False
    )
    return DriftResult(
        drifted=False,
        share=share,
        drifted_columns=[],
        n_columns=15,
        column_scores={},
        html_path=None,
        prediction=test,
    )


def test_history_lists_decisions_in_order(project_settings: Settings) -> None:
    append_decision(
        project_settings,
        monitoring_summary(
            "2026-04-13",
            "none",
            ["no dataset drift: 0/15"],
            rows=27_599,
            drift=drift_with_score(0.0, 0.031),
            performance=LivePerformance(
                rows=5000, frauds=40, measured=True, average_precision=0.712, floor=0.301
            ),
            retrain=None,
        ),
    )
    append_decision(
        project_settings,
        monitoring_summary(
            "2026-05-04",
            "retrain",
            ["performance drop: live AP 0.21"],
            rows=27_800,
            drift=drift_with_score(0.13, 0.021),
            performance=LivePerformance(
                rows=5000, frauds=40, measured=True, average_precision=0.214, floor=0.301
            ),
            retrain=RetrainOutcome(started=True, completed=True, promoted=False, version="2"),
        ),
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


def test_a_line_of_another_layout_is_one_clear_error(project_settings: Settings) -> None:
    """A history written by an earlier version names the file and line and says what to do."""
    from monitoring.history import history_file

    path = history_file(project_settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"today": "2026-04-13", "action": "none", "reasons": []}\n', encoding="utf-8")
    result = runner.invoke(app, ["monitor", "history"])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert f"{path}, line 1, is not a monitoring summary" in message and "move the file away" in message


def test_a_retrain_that_crashed_shows_as_crashed_and_a_finished_one_once(project_settings: Settings) -> None:
    """Each retrain is written as it starts and again when it ends; a start never followed by its end crashed."""
    from monitoring.history import read_history

    def retrain_line(today: str, attempt: str, **outcome: object) -> None:
        retrain = RetrainOutcome(started=True, attempt=attempt, **outcome)  # type: ignore[arg-type]
        append_decision(project_settings, monitoring_summary(today, "retrain", ["drift"], retrain=retrain))

    retrain_line("2026-05-04", "a", finished=False)
    retrain_line("2026-05-04", "a", completed=True, version="2")
    retrain_line("2026-05-05", "b", finished=False)  # the process died here
    assert [(h.today.day, h.retrain and h.retrain.attempt) for h in read_history(project_settings)] == [
        (4, "a"),
        (5, "b"),
    ]
    result = runner.invoke(app, ["monitor", "history"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "2026-" in line and "│" in line]
    assert len(rows) == 2 and "version 2" in rows[0] and "crashed" in rows[1]
