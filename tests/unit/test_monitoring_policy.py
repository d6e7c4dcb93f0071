"""Every branch of the retraining policy, with its exact action and the reason a person would read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.params import DRIFT_METHODS, MonitoringParams, Params
from monitoring.drift import ColumnTest, DriftResult, PredictionDrift
from monitoring.history import last_retrain_day, retrain_failures
from monitoring.performance import LivePerformance
from monitoring.policy import (
    Action,
    Decision,
    Expected,
    RetrainFailures,
    ap_floor,
    decide,
    hold_failing_retrain,
)
from monitoring.summary import (
    MonitoringSummary,
    RetrainOutcome,
)
from tests.conftest import monitoring_summary

PARAMS = MonitoringParams(
    window_days=7,
    min_rows=500,
    drift_share=0.5,
    drift_methods={},
    drift_thresholds={},
    prediction_drift_method="wasserstein",
    prediction_drift_threshold=0.1,
    prediction_drift_retrains=True,
    reference_rows=20_000,
    ap_drop_std=3.0,
    ap_drop=0.1,
    min_labelled_frauds=20,
    cooldown_days=14,
    retry_backoff_days=1,
    max_retrain_failures=3,
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
        column_scores={
            c: ColumnTest(
                method="wasserstein", score=0.2 if c in drifted else 0.05, threshold=0.1, drifted=c in drifted
            )
            for c in COLUMNS
        },
        html_path=Path("drift.html"),
        drift_share=0.5,
    )


def live_of(ap: float) -> LivePerformance:
    return LivePerformance(measured=True, average_precision=ap, rows=5000, frauds=40, reason=None)


NO_DRIFT = drift_of(["c0", "c1"])
DRIFT = drift_of(COLUMNS[:10])
GOOD, BAD = live_of(0.71), live_of(0.50)


def run(**overrides: Any) -> Any:
    args: dict[str, Any] = {
        "drift": NO_DRIFT,
        "live": GOOD,
        "expected": Expected(0.74),  # one figure, no spread: the fallback floor, 0.74 - ap_drop
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
    live = LivePerformance(
        rows=800, frauds=0, measured=False, reason="one class only (0 frauds in 800 labelled rows)"
    )
    decision = run(live=live)
    assert decision.action == "none"
    assert "performance not judged: one class only (0 frauds in 800 labelled rows)" in decision.reasons


def test_no_expected_ap_is_not_an_alarm() -> None:
    decision = run(live=BAD, expected=None)
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


def decided(today: str, action: Action, completed: bool | None) -> MonitoringSummary:
    """A history line: a run on ``today`` that decided ``action`` (retraining completed or not, or none)."""
    retrain = None if completed is None else RetrainOutcome(started=True, completed=completed)
    return monitoring_summary(today, action, retrain=retrain)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], None),
        ([decided("2026-02-20", "retrain", completed=True)], dt.date(2026, 2, 20)),
        ([decided("2026-02-20", "retrain", completed=False)], None),
        ([decided("2026-02-20", "retrain", completed=None)], None),
        ([decided("2026-02-20", "cooldown", completed=None)], None),
        (
            [
                decided("2026-02-10", "retrain", completed=True),
                decided("2026-02-20", "retrain", completed=True),
                decided("2026-03-05", "retrain", completed=True),
            ],
            dt.date(2026, 2, 20),
        ),
    ],
)
def test_last_retrain_day_counts_completed_retrains_up_to_today(
    history: list[MonitoringSummary], expected: dt.date | None
) -> None:
    assert last_retrain_day(history, TODAY) == expected


def failed(today: str, error: str | None = None) -> MonitoringSummary:
    """A retrain that raised ``error``, or (None) whose process died after its started line."""
    if error is None:
        return decided_with(today, RetrainOutcome(started=True, attempt=today, finished=False))
    return decided_with(today, RetrainOutcome(started=True, error=error, attempt=today))


def decided_with(today: str, retrain: RetrainOutcome) -> MonitoringSummary:
    return monitoring_summary(today, "retrain", retrain=retrain)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], RetrainFailures()),
        ([decided("2026-02-20", "retrain", completed=True)], RetrainFailures()),
        ([failed("2026-02-20")], RetrainFailures(1, dt.date(2026, 2, 20), None)),
        (  # a crash and a failure after the last completed retrain; a cool-down between does not count
            [
                failed("2026-02-08", "RuntimeError('old')"),
                decided("2026-02-10", "retrain", completed=True),
                failed("2026-02-20", "RuntimeError('boom')"),
                decided("2026-02-21", "cooldown", completed=None),
                failed("2026-02-22"),
            ],
            RetrainFailures(2, dt.date(2026, 2, 22), None),
        ),
        (
            [failed("2026-02-18", "OSError()"), decided("2026-02-20", "retrain", completed=True)],
            RetrainFailures(),
        ),
    ],
)
def test_retrain_failures_count_back_to_the_last_completed_retrain(
    history: list[MonitoringSummary], expected: RetrainFailures
) -> None:
    assert retrain_failures(history) == expected


def test_a_model_registered_since_ends_the_series_of_failures() -> None:
    history = [failed("2026-02-18", "OSError()"), failed("2026-02-20", "OSError('again')")]
    registered = dt.datetime(2026, 2, 19, tzinfo=dt.UTC)  # `fraudops train` between the two
    assert retrain_failures(history, registered) == RetrainFailures(
        1, dt.date(2026, 2, 20), "OSError('again')"
    )


RETRAIN = Decision("retrain", ["dataset drift: 10/15 columns drifted"])


@pytest.mark.parametrize(
    ("failures", "days_since", "action"),
    [
        (0, 0, "retrain"),
        (1, 0, "backoff"),
        (1, 1, "retrain"),  # the back-off: 1 day after one failure
        (2, 1, "backoff"),
        (2, 2, "retrain"),  # 2 days after two
        (3, 30, "alert"),  # three in a row: no more automatic retrains, however long ago
    ],
)
def test_failed_retrains_back_off_then_raise_an_alert(failures: int, days_since: int, action: Action) -> None:
    last = TODAY - dt.timedelta(days=days_since) if failures else None
    held = hold_failing_retrain(RETRAIN, RetrainFailures(failures, last, None), PARAMS, TODAY)
    assert held.action == action
    assert held.reasons[-1] == RETRAIN.reasons[0]  # what asked for the retrain is kept


def test_the_backoff_and_the_alert_say_why() -> None:
    one = RetrainFailures(1, TODAY, "RuntimeError('disk full')")
    assert hold_failing_retrain(RETRAIN, one, PARAMS, TODAY).reasons[0] == (
        "backoff: retraining failed once, last on 2026-03-01 (RuntimeError('disk full')); "
        "next attempt 1 days after it, 0 < 1"
    )
    three = RetrainFailures(3, TODAY - dt.timedelta(days=4), None)
    assert hold_failing_retrain(RETRAIN, three, PARAMS, TODAY).reasons[0] == (
        "alert: retraining failed 3 times in a row, last on 2026-02-25 (no record: the process stopped "
        "during the retrain); no automatic retrain after 3 failures: fix the cause, then run `fraudops train`"
    )
    held = Decision("cooldown", ["cooldown: last retrain on 2026-02-20"])
    assert hold_failing_retrain(held, three, PARAMS, TODAY) == held  # only a retrain is held back


# --- the floor from the validation folds, prediction drift, the policy's parameters ---------------

VALIDATED = Expected(0.60, average_precision_std=0.05, folds=2, precision=0.5, recall=0.6)


def test_floor_is_the_validation_mean_minus_k_standard_deviations() -> None:
    floor, rule = ap_floor(VALIDATED, PARAMS)
    assert floor == pytest.approx(0.60 - 3 * 0.05)
    assert rule == "mean 0.60 - 3 x std 0.05 of 2 validation folds"
    decision = run(live=live_of(0.44), expected=VALIDATED)
    assert decision.action == "retrain"
    assert decision.reasons == [
        "performance drop: live AP 0.44 < mean 0.60 - 3 x std 0.05 of 2 validation folds = 0.45"
        " (40 labelled frauds)"
    ]


def test_a_week_within_k_standard_deviations_is_no_alarm() -> None:
    decision = run(live=live_of(0.46), expected=VALIDATED)
    assert decision.action == "none"
    assert decision.reasons[1] == "live AP 0.46 vs expected 0.60 (alarm below 0.45)"


@pytest.mark.parametrize("expected", [Expected(0.60, None, folds=1), Expected(0.60, float("nan"), folds=2)])
def test_without_a_spread_the_floor_falls_back_to_ap_drop(expected: Expected) -> None:
    floor, rule = ap_floor(expected, PARAMS)
    assert floor == pytest.approx(0.50)
    assert rule == "expected 0.60 - ap_drop 0.1"


def with_prediction(drifted: bool, score: float) -> DriftResult:
    test = PredictionDrift(
        column="fraud_probability", method="wasserstein", score=score, threshold=0.1, drifted=drifted
    )
    return NO_DRIFT.model_copy(update={"prediction": test})


def test_prediction_drift_retrains_when_the_policy_says_so() -> None:
    decision = run(drift=with_prediction(True, 0.23))
    assert decision.action == "retrain"
    assert decision.reasons == ["prediction drift: wasserstein 0.230 >= 0.1"]


def test_prediction_drift_is_reported_but_not_a_trigger_when_switched_off() -> None:
    params = PARAMS.model_copy(update={"prediction_drift_retrains": False})
    decision = run(drift=with_prediction(True, 0.23), params=params)
    assert decision.action == "none"
    assert "prediction drift: wasserstein 0.230 >= 0.1 (not a retrain trigger)" in decision.reasons


def test_quiet_scores_say_so() -> None:
    decision = run(drift=with_prediction(False, 0.031))
    assert decision.action == "none"
    assert decision.reasons[1] == "no prediction drift: wasserstein 0.031 < 0.1"


def test_drift_methods_are_evidently_numerical_methods() -> None:
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    from evidently.legacy.core import ColumnType

    numerical = {name for name, kinds in _registered_stat_tests.items() if ColumnType.Numerical in kinds}
    assert numerical == DRIFT_METHODS


def test_params_refuse_unknown_methods_and_columns(params: Params) -> None:
    data = params.model_dump()
    with pytest.raises(ValidationError, match="unknown drift method"):
        MonitoringParams.model_validate(data["monitoring"] | {"drift_methods": {"tx_amount": "magic"}})
    with pytest.raises(ValidationError, match="unknown drift method"):
        MonitoringParams.model_validate(data["monitoring"] | {"prediction_drift_method": "chisquare"})
    with pytest.raises(ValidationError, match="threshold must be above 0"):
        MonitoringParams.model_validate(data["monitoring"] | {"drift_thresholds": {"tx_amount": 0}})
    monitoring = data["monitoring"] | {"drift_methods": {"tx_colour": "psi"}}
    with pytest.raises(ValidationError, match=r"not features: \['tx_colour'\]"):
        Params.model_validate(data | {"monitoring": monitoring})
    monitoring = data["monitoring"] | {
        "drift_methods": {"tx_amount": "psi"},
        "drift_thresholds": {"tx_amount": 0.2},
    }
    assert Params.model_validate(data | {"monitoring": monitoring}).monitoring.drift_methods == {
        "tx_amount": "psi"
    }


def test_a_floor_at_chance_level_says_the_alarm_is_blind() -> None:
    """Folds that vary this much leave no floor above the random baseline: the reason says so."""
    noisy = Expected(0.25, average_precision_std=0.13, folds=4, source="prequential folds")
    live = live_of(0.01).model_copy(update={"average_precision_random": 0.008})
    decision = run(live=live, expected=noisy)
    assert decision.action == "none"
    assert decision.reasons[1] == (
        "live AP 0.01 vs expected 0.25: no performance alarm possible, the floor"
        " (mean 0.25 - 3 x std 0.13 of 4 prequential folds = -0.14) is not above the random baseline 0.008"
    )
