"""``make model-check``: reading ``dvc metrics diff``, the tolerance rule, the gate's verdict, the summary.

The slow part (``dvc repro`` on the small world, about a minute) is what ``make model-check`` runs; here
a throwaway git + DVC repository gives ``dvc metrics diff`` real metrics to compare.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.params import GateParams, load_params
from fraudops.errors import UserError
from fraudops.model_check import (
    BASELINE,
    METRICS_FILE,
    TOLERANCE,
    UPDATE_COMMAND,
    WORLD,
    MetricChange,
    commit_baseline,
    dvc,
    judge_run,
    load_baseline,
    parse_metrics_diff,
    summary_markdown,
    write_step_summary,
)

ROOT = Path(__file__).resolve().parents[2]
BASE = {
    "average_precision": 0.50,
    "average_precision_random": 0.008,
    "roc_auc": 0.76,
    "card_precision_at_k": 0.20,
    "prequential_average_precision_mean": 0.27,
    "threshold": 0.63,
}


@pytest.fixture(scope="module")
def gate() -> GateParams:
    return load_params(ROOT / "params.yaml").gate


@pytest.fixture
def metrics_repo(tmp_path: Path) -> Path:
    """A git + DVC repository whose dvc.yaml declares the train stage's metrics file, baseline at HEAD."""
    identity = ["-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(["git", "init", "--quiet"], cwd=tmp_path, check=True)
    subprocess.run(dvc("init", "--quiet"), cwd=tmp_path, check=True)
    stage = {"stages": {"train": {"cmd": "true", "metrics": [{METRICS_FILE: {"cache": False}}]}}}
    (tmp_path / "dvc.yaml").write_text(json.dumps(stage), encoding="utf-8")
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    subprocess.run(["git", *identity, "commit", "--quiet", "-m", "dvc"], cwd=tmp_path, check=True)
    commit_baseline(tmp_path, BASE)
    return tmp_path


def real_diff(repo: Path, new: dict[str, float]) -> dict[str, Any]:
    """``new`` written to the workspace, then the same ``dvc metrics diff`` the check runs."""
    (repo / METRICS_FILE).write_text(json.dumps(new), encoding="utf-8")
    proc = subprocess.run(
        dvc("metrics", "diff", "HEAD", "--all", "--json"),
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    diff: dict[str, Any] = json.loads(proc.stdout)
    return diff


def test_a_drop_beyond_tolerance_in_dvc_metrics_diff_fails_and_a_smaller_one_passes(
    metrics_repo: Path, gate: GateParams
) -> None:
    worse = BASE | {"average_precision": 0.47, "roc_auc": 0.75}  # AP -0.03 (tolerance 0.02), AUC -0.01
    verdict = judge_run(real_diff(metrics_repo, worse), worse, BASE, gate)
    assert [c.name for c in verdict.worse] == ["average_precision"]
    ap = verdict.changes[0]
    assert (ap.name, ap.old, ap.new) == ("average_precision", 0.50, 0.47)
    assert not verdict.passed

    close = BASE | {"average_precision": 0.49, "card_precision_at_k": 0.25, "threshold": 0.2}
    verdict = judge_run(real_diff(metrics_repo, close), close, BASE, gate)
    assert verdict.worse == []
    assert verdict.passed
    assert {c.name: c.change for c in verdict.changes}["threshold"] == pytest.approx(-0.43)


def test_gated_metrics_come_first_in_the_tolerance_order(metrics_repo: Path) -> None:
    changes = parse_metrics_diff(real_diff(metrics_repo, BASE), TOLERANCE)
    assert [c.name for c in changes[: len(TOLERANCE)]] == list(TOLERANCE)
    assert all(c.tolerance is None for c in changes[len(TOLERANCE) :])


@pytest.mark.parametrize(
    ("old", "new", "tolerance", "worse"),
    [
        (0.50, 0.48, 0.02, False),  # exactly the tolerance below: still passes
        (0.50, 0.479, 0.02, True),
        (0.50, 0.60, 0.02, False),
        (0.50, None, 0.02, True),  # a gated metric the pipeline no longer writes
        (None, 0.40, 0.02, False),  # new in this run: nothing to compare with
        (0.50, 0.10, None, False),  # shown, not gated
    ],
)
def test_tolerance_rule(old: float | None, new: float | None, tolerance: float | None, worse: bool) -> None:
    assert MetricChange("m", old, new, tolerance).worse is worse


def test_a_gated_metric_missing_from_the_diff_fails(gate: GateParams) -> None:
    diff = {METRICS_FILE: {k: {"old": v, "new": v, "diff": 0.0} for k, v in BASE.items() if k != "roc_auc"}}
    verdict = judge_run(diff, BASE, BASE, gate)
    assert [c.name for c in verdict.worse] == ["roc_auc"]


def test_a_model_that_fails_the_first_model_gate_fails_the_check(gate: GateParams) -> None:
    # every metric as the baseline's, but the baseline itself is barely above random
    weak = BASE | {"average_precision": 0.03, "average_precision_random": 0.01}
    diff = {METRICS_FILE: {k: {"old": v, "new": v, "diff": 0.0} for k, v in weak.items()}}
    verdict = judge_run(diff, weak, weak, gate)
    assert verdict.worse == []
    assert not verdict.as_first_model.promote
    assert not verdict.passed


def test_the_summary_says_what_failed_and_goes_to_the_job_summary(
    metrics_repo: Path, gate: GateParams, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worse = BASE | {"card_precision_at_k": 0.15}
    verdict = judge_run(real_diff(metrics_repo, worse), worse, BASE, gate)
    baseline = {"date": "2026-12-05 18:13 UTC", "commit": "16316fe34932"}
    text = summary_markdown(verdict, baseline, 66.0)
    assert text.startswith("## Model check: ❌ fail")
    assert "| card_precision_at_k | 0.2000 | 0.1500 | -0.0500 | -0.02 | WORSE |" in text
    assert "dropped beyond tolerance: card_precision_at_k" in text
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    write_step_summary(text)
    write_step_summary("second\n")
    assert summary.read_text(encoding="utf-8") == text + "second\n"
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    write_step_summary("nowhere")  # outside GitHub Actions: nothing written, no error


def test_the_committed_baseline_is_of_this_checks_world() -> None:
    baseline = load_baseline(BASELINE)
    assert baseline["world"] == WORLD
    assert baseline["command"] == UPDATE_COMMAND
    assert set(TOLERANCE) <= baseline["metrics"].keys()
    # a baseline worth comparing with: well above the random baseline
    assert baseline["metrics"]["average_precision"] > 10 * baseline["metrics"]["average_precision_random"]


def test_a_baseline_of_another_world_asks_for_an_update(tmp_path: Path) -> None:
    other = json.loads(BASELINE.read_text(encoding="utf-8")) | {"world": WORLD | {"customers": 500}}
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(other), encoding="utf-8")
    with pytest.raises(UserError, match=UPDATE_COMMAND):
        load_baseline(path)
    with pytest.raises(UserError, match="missing"):
        load_baseline(tmp_path / "absent.json")


def test_make_passes_update_only_when_asked() -> None:
    def dry_run(*args: str) -> str:
        # under `make test` the caller's MAKELEVEL and MAKEFLAGS would add "Entering directory" lines
        env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
        proc = subprocess.run(
            ["make", "--no-print-directory", "-n", "model-check", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
        )
        return proc.stdout.splitlines()[-1]

    assert dry_run().split() == [".venv/bin/python", "-m", "fraudops.model_check"]
    assert dry_run("UPDATE=1").split()[-1] == "--update"
