"""The demo's summary (and `fraudops monitor history`) shows each decision with its evidence, reasons and reports."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from fraudops.render import print_decisions
from monitoring.drift import DriftResult, PredictionDrift
from monitoring.performance import Expected, LivePerformance
from monitoring.summary import ReportPaths
from tests.conftest import monitoring_summary

REPORTS = ReportPaths(
    drift_html=Path("reports/monitoring/2026-05-14-drift.html"),
    performance_html=Path("reports/monitoring/2026-05-14-performance.html"),
    summary_json=Path("reports/monitoring/2026-05-14-summary.json"),
)


RUN = monitoring_summary(
    "2026-05-14",
    "retrain",
    ["dataset drift: 2/15 columns drifted", "performance drop: live AP 0.12 < 0.31"],
    rows=41_512,
    drift=DriftResult(
        drifted=True,
        share=2 / 15,
        drifted_columns=["tx_amount", "customer_nb_tx_1d"],
        n_columns=15,
        column_scores={},
        html_path=REPORTS.drift_html,
        prediction=PredictionDrift(
            column="fraud_probability", method="wasserstein", score=0.412, threshold=0.1, drifted=True
        ),
    ),
    performance=LivePerformance(
        rows=9_000, frauds=60, measured=True, average_precision=0.125, expected=Expected(0.52), floor=0.31
    ),
    reports=REPORTS,
)
QUIET = monitoring_summary("2026-04-09", "not-enough-data", ["only 120 scored"], rows=120)


def test_decisions_show_evidence_reasons_and_report_paths() -> None:
    out = io.StringIO()
    print_decisions(Console(file=out, width=200), [QUIET, RUN])
    text = out.getvalue()
    assert "2/15" in text and "0.412 (drift)" in text and "0.125 (0.520; 0.310)" in text
    assert "2026-05-14 — retrain: dataset drift: 2/15 columns drifted; performance drop" in text
    assert "2026-04-09 — not-enough-data: only 120 scored" in text
    for path in (REPORTS.drift_html, REPORTS.performance_html, REPORTS.summary_json):
        assert str(path) in text
    assert "drift html: reports/monitoring/2026-05-14-drift.html" in text
