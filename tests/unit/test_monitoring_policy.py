"""Every branch of the retraining policy, with its exact action and the reason a person would read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from core.params import MonitoringParams
from monitoring.drift import DriftResult
from monitoring.history import last_retrain_day
from monitoring.policy import decide

PARAMS = MonitoringParams(
    window_days=7,
    min_rows=500,
    drift_share=0.5,
    reference_rows=20_000,
    ap_drop=0.1,
    min_labelled_frauds=20,
    cooldown_days=14,
)
TODAY = dt.date(2026, 3, 1)
COLUMNS = [f"c{i}" for i in range(15)]


def drift_of(drifted: list[str]) -> DriftResult:
    """A DriftResult as Evidently would report it with the default share of 0.5."""
    share = len(drifted) / len(COLUMNS)
    return DriftResult(
        drifted=share >= 0.5,
        share=share,
        drifted_columns=drifted,
        n_columns=len(COLUMNS),
        column_scores={c: {"drifted": c in drifted} for c in COLUMNS},
        html_path=Path("drift.html"),
        drift_share=0.5,
    )


def live_of(ap: float) -> dict[str, Any]:
    return {"measured": True, "average_precision": ap, "rows": 5000, "frauds": 40, "reason": None}


NO_DRIFT = drift_of(["c0", "c1"])
DRIFT = drift_of(COLUMNS[:10])
GOOD, BAD = live_of(0.71), live_of(0.50)


def run(**overrides: Any) -> Any:
    args: dict[str, Any] = {
        "drift": NO_DRIFT,
        "live": GOOD,
        "expected_ap": 0.74,
        "params": PARAMS,
        "today": TODAY,
        "last_retrain": None,
        "rows": 5000,
        "labelled_frauds": 40,
    }
    return decide(**(args | overrides))


def test_nothing_wrong_says_what_was_checked() -> None:
    decision = run()
    assert decision.action == "none"
    assert decision.reasons == [
        "no dataset drift: 2/15 columns drifted (share 0.13 < 0.5)",
        "live AP 0.71 vs expected 0.74 (alarm below 0.64)",
    ]


def test_too_few_rows_is_not_enough_data_even_with_drift() -> None:
    decision = run(rows=499, drift=DRIFT, live=BAD)
    assert decision.action == "not-enough-data"
    assert decision.reasons == ["only 499 scored transactions in the window (< min_rows 500): no judgement"]


def test_dataset_drift_retrains_naming_share_and_columns() -> None:
    decision = run(drift=DRIFT)
    assert decision.action == "retrain"
    assert len(decision.reasons) == 1
    assert "dataset drift: 10/15 columns drifted (share 0.67 >= 0.5)" in decision.reasons[0]
    assert "c0, c1, c2" in decision.reasons[0]


def test_performance_drop_retrains_giving_both_numbers() -> None:
    decision = run(live=BAD)
    assert decision.action == "retrain"
    assert decision.reasons == [
        "performance drop: live AP 0.50 < expected 0.74 - ap_drop 0.1 = 0.64 (40 labelled frauds)"
    ]


def test_drift_and_drop_give_both_reasons() -> None:
    decision = run(drift=DRIFT, live=BAD)
    assert decision.action == "retrain"
    assert [r.split(":")[0] for r in decision.reasons] == ["dataset drift", "performance drop"]


def test_too_few_labelled_frauds_means_no_performance_judgement() -> None:
    decision = run(live=BAD, labelled_frauds=19)
    assert decision.action == "none"
    assert "performance not judged: 19 labelled frauds (< min_labelled_frauds 20)" in decision.reasons


def test_unmeasurable_window_says_why() -> None:
    live = {"measured": False, "reason": "one class only (0 frauds in 800 labelled rows)"}
    decision = run(live=live)
    assert decision.action == "none"
    assert "performance not judged: one class only (0 frauds in 800 labelled rows)" in decision.reasons


def test_no_expected_ap_is_not_an_alarm() -> None:
    decision = run(live=BAD, expected_ap=None)
    assert decision.action == "none"
    assert "no expected AP recorded" in decision.reasons[1]


def test_no_reference_means_drift_not_checked() -> None:
    decision = run(drift=None)
    assert decision.action == "none"
    assert decision.reasons[0] == "dataset drift not checked (no reference sample)"


def test_retrain_within_cooldown_is_held_back_with_its_trigger() -> None:
    decision = run(drift=DRIFT, last_retrain=TODAY - dt.timedelta(days=13))
    assert decision.action == "cooldown"
    assert decision.reasons[0] == "cooldown: last retrain on 2026-02-16, 13 < 14 days ago"
    assert decision.reasons[1].startswith("dataset drift: 10/15")


def test_cooldown_ends_after_cooldown_days() -> None:
    assert run(drift=DRIFT, last_retrain=TODAY - dt.timedelta(days=14)).action == "retrain"


def test_cooldown_does_not_hide_a_healthy_window() -> None:
    assert run(last_retrain=TODAY - dt.timedelta(days=1)).action == "none"


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], None),
        (
            [{"today": "2026-02-20", "action": "retrain", "retrain": {"completed": True}}],
            dt.date(2026, 2, 20),
        ),
        ([{"today": "2026-02-20", "action": "retrain", "retrain": {"completed": False}}], None),
        ([{"today": "2026-02-20", "action": "retrain", "retrain": None}], None),
        ([{"today": "2026-02-20", "action": "cooldown", "retrain": None}], None),
        (
            [
                {"today": "2026-02-10", "action": "retrain", "retrain": {"completed": True}},
                {"today": "2026-02-20", "action": "retrain", "retrain": {"completed": True}},
                {"today": "2026-03-05", "action": "retrain", "retrain": {"completed": True}},
            ],
            dt.date(2026, 2, 20),
        ),
    ],
)
def test_last_retrain_day_counts_completed_retrains_up_to_today(
    history: list[dict[str, Any]], expected: dt.date | None
) -> None:
    assert last_retrain_day(history, TODAY) == expected
