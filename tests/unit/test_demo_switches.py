"""The demo's --pause and its "break it" switches: each changes only what it names, in the demo's wiring.

The whole storyline takes minutes, so each switch's wiring is checked on its own: which monitoring
pass runs and whether it may retrain, whether the gate is asked, which process serves. The feature
mismatch runs on the real online feature state.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from core.features import compute_features
from core.online import OnlineFeatures
from core.params import load_params
from core.settings import Settings
from core.simulator import SimulationConfig, write_simulation
from fraudops import demo, render, teaching_api
from tests.conftest import ROOT, monitoring_summary, training_outcome


def story(tmp_path: Path, *switches: str, pause: bool = False) -> demo.Story:
    settings = Settings(project_dir=ROOT)
    cfg = demo.DemoConfig(pause=pause, switches=switches)
    return demo.Story(settings, cfg, Console(file=io.StringIO(), width=200))


def text(s: demo.Story) -> str:
    return s.console.file.getvalue()  # type: ignore[attr-defined]


def test_pause_names_each_step_page_and_does_not_hang_without_a_terminal(tmp_path: Path) -> None:
    s = story(tmp_path, pause=True)
    s.step("Simulate", "simulate")
    s.step("Train", "train")  # pauses after "Simulate"
    s.pause()  # after the last step
    out = text(s)
    assert "paused: read docs/course/01-data.md (stdin is not a terminal: continuing)" in out
    assert "read docs/course/02-features.md, docs/course/03-training.md, docs/course/04-registry.md" in out
    quiet = story(tmp_path)
    quiet.step("Simulate", "simulate")
    quiet.pause()
    assert "paused" not in text(quiet)


def test_every_page_the_pause_names_is_in_the_course_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for pages in demo.PAGES.values():
        for page in pages:
            assert page.removeprefix("docs/") in nav, page


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    """Record the flows the demo's monitoring step calls instead of running them (minutes each)."""
    made: list[tuple[str, Any]] = []

    def monitor_once(s: demo.Story, retrain: bool = True) -> Any:
        made.append(("monitor", retrain))
        return monitoring_summary("2026-05-14", "retrain")

    def train_model(s: demo.Story, reason: str) -> Any:
        made.append(("train", reason))
        outcome = training_outcome(reason, version="3", promote=False)
        s.trainings.append(outcome)
        return outcome

    monkeypatch.setattr(demo, "monitor_once", monitor_once)
    monkeypatch.setattr(demo, "train_model", train_model)
    monkeypatch.setattr(demo, "force_champion", lambda s, version: made.append(("force", version)) or version)
    yield made


@pytest.mark.parametrize(
    ("switch", "expected"),
    [
        ((), [("monitor", True)]),
        (("no-retraining",), [("monitor", False)]),
        (("no-monitoring",), []),
        (
            ("promote-latest",),
            [("monitor", False), ("train", "promote-latest: every monitoring pass"), ("force", "3")],
        ),
    ],
)
def test_each_switch_wires_the_monitoring_pass_it_names(
    tmp_path: Path, calls: list[tuple[str, Any]], switch: tuple[str, ...], expected: list[Any]
) -> None:
    s = story(tmp_path, *switch)
    demo.watch(s, "Monitor: the drifted weeks")
    assert calls == expected
    assert s.judged == (0 if "no-monitoring" in switch else 1)


def test_feature_mismatch_skews_tx_amount_alone_on_the_real_online_state(tmp_path: Path) -> None:
    params = load_params(ROOT / "params.yaml")
    _, tx = write_simulation(tmp_path / "sim", SimulationConfig(customers=50, terminals=100, days=3, seed=1))
    feats = compute_features(tx, tx["tx_fraud"].to_numpy(), params.features, params.data.label_delay_days)
    rows = [
        (t.transaction_id, int(t.tx_datetime.timestamp()), t.customer_id, t.terminal_id, t.tx_amount)
        for t in tx.itertuples()
    ]
    saved = OnlineFeatures.add_transactions, OnlineFeatures.features_of
    try:
        teaching_api.inject("tx_amount_cents")
        online = OnlineFeatures(params.features, params.data.label_delay_days).add_transactions(rows)
    finally:
        OnlineFeatures.add_transactions, OnlineFeatures.features_of = saved
    clean = OnlineFeatures(params.features, params.data.label_delay_days).add_transactions(rows)
    at = list(feats.columns).index("tx_amount")
    np.testing.assert_allclose(clean[:, at], feats["tx_amount"].to_numpy(dtype=np.float32), rtol=1e-6)
    np.testing.assert_allclose(online[:, at], clean[:, at] * 100, rtol=1e-6)
    others = [i for i in range(clean.shape[1]) if i != at]
    np.testing.assert_array_equal(online[:, others], clean[:, others])
    with pytest.raises(SystemExit, match="not a teaching mismatch"):
        teaching_api.inject("nonsense")


def test_runs_are_compared_side_by_side() -> None:
    healthy = {"run": "healthy", "live_ap_drifted": 0.61, "served_version": "2", "served_passed_gate": True}
    broken = {
        "run": "no-monitoring",
        "live_ap_drifted": 0.254,
        "alerts_missed": 1,
        "served_passed_gate": None,
    }
    out = io.StringIO()
    Console(file=out, width=200).print(render.outcomes_table([healthy, broken]))
    rows = {line.split("│")[1].strip(): line for line in out.getvalue().splitlines() if line.count("│") == 4}
    assert "healthy" in out.getvalue() and "no-monitoring" in out.getvalue()
    assert [c.strip() for c in rows["live AP, drifted weeks"].split("│")[2:4]] == ["0.610", "0.254"]
    assert [c.strip() for c in rows["served version passed the gate"].split("│")[2:4]] == ["yes", "—"]


def test_the_switches_are_demo_only() -> None:
    """No pipeline, serving or core module knows the teaching switches."""
    for folder in ("core", "pipelines", "serving", "monitoring"):
        for path in (ROOT / folder).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            assert teaching_api.ENV not in source and "teaching_api" not in source, path
