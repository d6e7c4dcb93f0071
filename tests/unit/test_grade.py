"""``make grade``: the rubric's rows, the metrics comparison, the alias scan and the exit code.

Fast pieces only: the slow rows (the suite, the training) are what ``make grade`` itself runs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from fraudops.grade import (
    BASELINE,
    RECORD_COMMAND,
    WORLD,
    Check,
    Outcome,
    alias_step,
    app,
    compare_metrics,
    grade,
    load_baseline,
    make_checks,
    pytest_step,
)

ROOT = Path(__file__).resolve().parents[2]


def no_progress(done: float, total: float) -> None:
    """A progress callback for steps run outside the table."""


def rubric_rows() -> list[str]:
    """The check names of TAKE_HOME.md's table "What `make grade` checks"."""
    text = (ROOT / "TAKE_HOME.md").read_text(encoding="utf-8")
    section = text.split("### What `make grade` checks", 1)[1].split("\n###", 1)[0]
    return re.findall(r"^\| `([a-z]+)` \|", section, flags=re.MULTILINE)


def test_the_table_has_every_row_of_the_rubric_in_its_order(tmp_path: Path) -> None:
    rows = rubric_rows()
    assert rows == ["tests", "lint", "parity", "gate", "alias", "metrics"]
    assert [c.name for c in make_checks(tmp_path, quick=True, baseline_path=BASELINE)] == rows


def test_the_committed_baseline_says_how_and_when_it_was_made() -> None:
    baseline = load_baseline(BASELINE)
    assert baseline["command"] == RECORD_COMMAND
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", baseline["date"])
    assert re.fullmatch(r"[0-9a-f]{40}", baseline["commit"])
    assert baseline["world"] == WORLD
    # the recorded model is well above random, or the row would guard nothing
    for key in ("average_precision", "card_precision_at_k"):
        assert baseline["metrics"][key] > 5 * baseline["metrics"][f"{key}_random"]


def test_metrics_within_the_tolerance_pass() -> None:
    baseline = load_baseline(BASELINE)
    tol = baseline["tolerance"]
    measured = {
        k: baseline["metrics"][k] - 0.9 * tol[k] for k in ("average_precision", "card_precision_at_k")
    }
    outcome = compare_metrics(measured, baseline)
    assert outcome.passed, outcome.detail


@pytest.mark.parametrize("worse", ["average_precision", "card_precision_at_k"])
def test_a_metric_worse_than_the_baseline_beyond_the_tolerance_fails(worse: str) -> None:
    baseline = load_baseline(BASELINE)
    measured = {k: baseline["metrics"][k] for k in ("average_precision", "card_precision_at_k")}
    measured[worse] -= baseline["tolerance"][worse] + 0.01
    outcome = compare_metrics(measured, baseline)
    assert not outcome.passed
    label = {"average_precision": "AP", "card_precision_at_k": "CP@k"}[worse]
    assert f"{label} {measured[worse]:.3f} < baseline" in outcome.detail


def test_a_baseline_without_its_provenance_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text('{"metrics": {"average_precision": 0.5}}', encoding="utf-8")
    with pytest.raises(ValueError, match="record it again"):
        load_baseline(path)


def test_the_champion_alias_is_set_only_by_the_gate() -> None:
    outcome = alias_step(ROOT)(no_progress)
    assert outcome.passed, outcome.detail
    assert outcome.detail.startswith("set only in pipelines/gate.py:")


def write_module(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


def test_an_alias_set_outside_the_gate_fails_the_row_and_the_exit_code(tmp_path: Path) -> None:
    gate = "def apply(client):\n    client.set_registered_model_alias('m', 'champion', '1')\n"
    write_module(tmp_path, "pipelines/gate.py", gate)
    write_module(
        tmp_path,
        "serving/shortcut.py",
        "def go(c):\n    c.set_registered_model_alias('m', 'champion', '2')\n",
    )
    outcome = alias_step(tmp_path)(no_progress)
    assert not outcome.passed
    assert "serving/shortcut.py:2" in outcome.detail
    result = CliRunner().invoke(app, ["--only", "alias", "--root", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "pipelines.gate.apply_decision" in result.output


def test_a_gate_that_no_longer_sets_the_alias_fails(tmp_path: Path) -> None:
    write_module(tmp_path, "pipelines/gate.py", "def apply(client):\n    return None\n")
    outcome = alias_step(tmp_path)(no_progress)
    assert not outcome.passed and "no alias call found" in outcome.detail


def test_every_check_passing_exits_zero() -> None:
    result = CliRunner().invoke(app, ["--only", "alias", "--root", str(ROOT)])
    assert result.exit_code == 0, result.output
    assert "pass" in result.output


def test_a_failing_pytest_run_fails_its_row_with_the_failing_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # the installed plugins take seconds to load
    write_module(
        tmp_path, "test_one.py", "def test_ok():\n    pass\n\ndef test_broken():\n    assert 1 == 2\n"
    )
    outcome = pytest_step(["test_one.py", "-p", "no:cacheprovider", "-ra"], tmp_path)(no_progress)
    assert not outcome.passed
    assert "1 failed, 1 passed" in outcome.detail
    assert "FAILED test_one.py::test_broken" in outcome.detail


def test_a_check_that_raises_is_a_failed_row_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    def broken(report: object) -> Outcome:
        raise RuntimeError("store unreachable")

    def fine(report: object) -> Outcome:
        return Outcome(True, "ok")

    checks = [Check("one", "raises", broken, "look at the store"), Check("two", "passes", fine, "-")]
    console = Console(file=sys.stdout, width=200)
    assert grade(checks, console) == 1
    out = capsys.readouterr().out
    assert "RuntimeError: store unreachable" in out and "look at the store" in out
