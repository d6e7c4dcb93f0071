"""The plots draw the numbers they claim: training's precision-recall curves and monitoring's timeline.

Each test checks the prepared series against what they come from (scikit-learn's curve, the history's
values), then that the PNG is written and decodes at the expected size.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve

from core.settings import Settings
from monitoring.drift import DriftResult
from monitoring.history import append_decision
from monitoring.performance import LivePerformance
from monitoring.plots import TimelinePoint, save_timeline, timeline_file, timeline_series, write_timeline
from monitoring.summary import RetrainOutcome
from pipelines.plots import pr_series, write_pr_curve
from tests.conftest import monitoring_summary


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG, decoded by matplotlib (raises on a file that is not one)."""
    import matplotlib.image

    height, width = matplotlib.image.imread(str(path)).shape[:2]
    return width, height


def labelled_scores(seed: int = 3, n: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.05).astype(int)
    model = y * 0.6 + rng.random(n) * 0.7  # better than the baseline, not perfect
    baseline = y * 0.2 + rng.random(n)
    return y, model, baseline


def test_pr_series_are_sklearns_curves_beside_the_baselines() -> None:
    y, model, baseline = labelled_scores()
    curves = {c.label: c for c in pr_series(y, model, baseline)}
    assert list(curves) == ["model", "logistic baseline", "random baseline"]
    for label, scores in (("model", model), ("logistic baseline", baseline)):
        precision, recall, _ = precision_recall_curve(y, scores)
        np.testing.assert_array_equal(curves[label].precision, precision)
        np.testing.assert_array_equal(curves[label].recall, recall)
        assert curves[label].average_precision == pytest.approx(average_precision_score(y, scores))
    random = curves["random baseline"]
    assert random.average_precision == pytest.approx(y.mean())
    np.testing.assert_allclose(random.precision, [y.mean(), y.mean()])
    assert curves["model"].average_precision > curves["logistic baseline"].average_precision > y.mean()


def test_pr_curve_png_is_written_at_its_size(tmp_path: Path) -> None:
    y, model, baseline = labelled_scores()
    path = write_pr_curve(y, model, baseline, tmp_path / "metrics" / "pr_curve.png", "2026-03-01..2026-03-07")
    assert png_size(path) == (640, 480)


def drift(share: float) -> DriftResult:
    return DriftResult(
        drifted=share >= 0.5,
        share=share,
        drifted_columns=[],
        n_columns=15,
        column_scores={},
        html_path=None,
        drift_share=0.5,
    )


def performance(ap: float | None) -> LivePerformance:
    if ap is None:
        return LivePerformance(rows=0, frauds=0, measured=False, reason="no labelled rows")
    return LivePerformance(rows=5000, frauds=40, measured=True, average_precision=ap, floor=0.3)


def test_timeline_series_follow_the_history_one_point_per_day(project_settings: Settings) -> None:
    started = RetrainOutcome(started=True, attempt="a1", finished=False)
    done = RetrainOutcome(started=True, completed=True, promoted=True, version="2", attempt="a1")
    runs = [
        monitoring_summary("2026-04-06", drift=drift(0.0), performance=performance(None)),
        monitoring_summary("2026-04-13", drift=drift(0.2), performance=performance(0.71)),
        monitoring_summary(
            "2026-04-20", "retrain", drift=drift(0.6), performance=performance(0.25), retrain=started
        ),
    ]
    for run in runs:
        append_decision(project_settings, run)
    finished = monitoring_summary(
        "2026-04-20", "retrain", drift=drift(0.6), performance=performance(0.25), retrain=done
    )

    points = timeline_series([*runs, finished])
    assert [p.day for p in points] == [dt.date(2026, 4, 6), dt.date(2026, 4, 13), dt.date(2026, 4, 20)]
    assert [p.drift_share for p in points] == [0.0, 0.2, 0.6]
    assert [p.live_average_precision for p in points] == [None, 0.71, 0.25]
    assert [p.floor for p in points] == [None, 0.3, 0.3]
    assert [p.retrained for p in points] == [False, False, True]  # the finished line replaced the started one

    path = write_timeline(project_settings, finished)  # the history plus the run being recorded
    assert path == timeline_file(project_settings) and png_size(path) == (900, 480)


def test_a_timeline_with_nothing_measured_draws_without_a_warning(tmp_path: Path) -> None:
    """A first run that measured neither drift nor live AP: no empty legend (matplotlib warns of one)."""
    blank = TimelinePoint(dt.date(2026, 4, 6), None, None, None, None, action="none", retrained=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = save_timeline([blank], tmp_path / "timeline.png")
    assert png_size(path) == (900, 480)
