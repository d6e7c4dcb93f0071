"""The whole loop on tiny settings: real DVC repository, MLflow store, Prefect flow runs and uvicorn.

It runs the demo's storyline: history → first champion → normal traffic (no drift) → holiday season
with a new fraud pattern (drift) → retraining → gate → promotion picked up by the running API.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from core.predlog import read_feedback, read_predictions
from core.settings import Settings
from fraudops.demo import DemoConfig, current_champion_version, run_demo
from monitoring.summary import MonitoringSummary

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report_of(summary: MonitoringSummary, kind: str) -> Path | None:
    """The run's data-drift or prediction-drift HTML report."""
    return summary.reports.drift_html if kind == "data" else summary.reports.prediction_drift_html


def test_drift_retrains_and_the_running_api_serves_the_new_champion(
    project_settings: Settings, prefect_server: None
) -> None:
    out = io.StringIO()
    # 1,000 customers: with known-compromised cards left out of the test week, fewer leave too few
    # frauds in the drifted week for the gate to tell the models apart
    cfg = DemoConfig(customers=1000, terminals=2000, seed=7, port=free_port(), api_poll_s=1.0)
    story = run_demo(project_settings, cfg, Console(file=out, width=160))
    root = project_settings.project_dir

    first, last = story.trainings[0], story.trainings[-1]
    assert first.version == "1" and first.decision.promote
    assert [m.decision.action for m in story.monitoring] == ["none", "retrain"], out.getvalue()[-3000:]
    normal, drifted = story.monitoring
    assert normal.drift is not None and normal.drift.drifted is False
    assert drifted.drift is not None and drifted.drift.drifted is True
    assert "tx_amount" in drifted.drift.drifted_columns
    assert last.version == "2" and last.decision.promote, last.decision
    # the gate judged both models on the same held-out window, and the challenger won there
    assert last.champion_metrics is not None
    assert last.metrics["average_precision"] > last.champion_metrics["average_precision"]
    assert current_champion_version(project_settings) == "2"
    assert "/v1/metadata now reports version 2" in out.getvalue()

    # every scored transaction is in the prediction log, every label sent is in the feedback log
    scored = read_predictions(project_settings.prediction_log)
    assert len(scored) == len(set(scored["transaction_id"])) > 0
    assert set(scored["model_version"].astype(str)) >= {"1"}
    assert len(read_feedback(project_settings.prediction_log)) > 0

    # DVC versioned the data; the retrained model records the newest version
    assert (root / "data" / "raw.dvc").exists() and (root / "dvc.lock").exists()
    assert last.data_version != first.data_version
    assert any((root / "stores" / "dvc-remote").rglob("*"))
    for kind in ("data", "prediction"):
        reports = [report_of(summary, kind) for summary in story.monitoring]
        assert all(p is not None and p.stat().st_size > 10_000 for p in reports), kind
    assert drifted.reports.summary_json is not None and drifted.reports.summary_json.exists()
    # the summary shows each decision with its reasons and the paths of its reports
    for summary in story.monitoring:
        decision = summary.decision
        assert f"{summary.today} — {decision.action}: " + "; ".join(decision.reasons) in out.getvalue()
        assert f"drift html: {summary.reports.drift_html}" in out.getvalue()

    # DVC shows the training stage's metrics and its precision-recall curve
    dvc = [str(Path(sys.executable).parent / "dvc")]
    shown = subprocess.run(
        [*dvc, "metrics", "show", "--json"], cwd=root, capture_output=True, text=True, check=True
    )
    metrics = json.loads(shown.stdout)
    assert "average_precision" in json.dumps(metrics)
    plots = subprocess.run(
        [*dvc, "plots", "show", "-o", str(root / "plots")], cwd=root, capture_output=True, text=True
    )
    assert plots.returncode == 0, plots.stderr
    assert (root / "plots" / "index.html").stat().st_size > 1000
