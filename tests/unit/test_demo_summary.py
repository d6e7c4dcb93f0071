"""The demo's summary (and `fraudops monitor history`) shows each monitoring decision with its evidence, its reasons and its reports."""

from __future__ import annotations

import io

from rich.console import Console

from fraudops.render import print_decisions

RUN = {
    "today": "2026-05-14",
    "rows": 41_512,
    "drifted_columns": ["tx_amount", "customer_nb_tx_1d"],
    "drift": {"n_columns": 15},
    "prediction_drift": {"method": "wasserstein", "score": 0.412, "threshold": 0.1, "drifted": True},
    "performance": {"average_precision": 0.125, "floor": 0.31},
    "expected_ap": 0.52,
    "action": "retrain",
    "reasons": ["dataset drift: 2/15 columns drifted", "performance drop: live AP 0.12 < 0.31"],
    "reports": {
        "drift_html": "reports/monitoring/2026-05-14-drift.html",
        "performance_html": "reports/monitoring/2026-05-14-performance.html",
        "summary_json": "reports/monitoring/2026-05-14-summary.json",
    },
}
QUIET = {"today": "2026-04-09", "rows": 120, "action": "not-enough-data", "reasons": ["only 120 scored"]}


def test_decisions_show_evidence_reasons_and_report_paths() -> None:
    out = io.StringIO()
    print_decisions(Console(file=out, width=200), [QUIET, RUN])
    text = out.getvalue()
    assert "2/15" in text and "0.412 (drift)" in text and "0.125 (0.520; 0.310)" in text
    assert "2026-05-14 — retrain: dataset drift: 2/15 columns drifted; performance drop" in text
    assert "2026-04-09 — not-enough-data: only 120 scored" in text
    for path in RUN["reports"].values():
        assert path in text
    assert "drift html: reports/monitoring/2026-05-14-drift.html" in text
