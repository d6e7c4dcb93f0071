"""The retraining policy: what the monitor's evidence calls for, with reasons a person can check.

Order of the rules: too few scored rows stops everything (a small window makes false alarms); then
dataset drift (Evidently's verdict), prediction drift (when ``prediction_drift_retrains``) and a live
average precision below the champion's validation figures each ask for a retrain; a retrain asked for
within the cool-down after the last one is held back.

A retrain that did not complete (it raised, or the process died after its "started" line) starts no
cool-down, but the next one waits a back-off of ``retry_backoff_days``, doubling with each failure in
a row; after ``max_retrain_failures`` in a row the monitor stops retrying and raises an alert instead
(:func:`hold_failing_retrain`), until a retrain completes or ``fraudops train`` registers a model.

The performance floor is the mean AP of the weeks the champion's recipe scored out of sample at
training minus ``ap_drop_std`` standard deviations of them: the prequential folds (the newest
labelled weeks, the validation weeks among them), else the validation folds. A week as bad as that
is unlikely from the weeks the champion was judged on. With fewer than two weeks there is no spread
to measure, and the floor falls back to the expected AP minus ``ap_drop``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import field
from typing import Literal

from pydantic.dataclasses import dataclass

from core.params import MonitoringParams
from monitoring.drift import DriftResult
from monitoring.performance import Expected, LivePerformance

__all__ = ["Action", "Decision", "Expected", "RetrainFailures", "ap_floor", "decide", "hold_failing_retrain"]

Action = Literal["retrain", "none", "not-enough-data", "cooldown", "backoff", "alert"]


@dataclass(frozen=True)
class Decision:
    """What to do, and why."""

    action: Action
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RetrainFailures:
    """Retrains in a row that did not complete, as the history tells (none: ``count`` 0)."""

    count: int = 0
    last_day: dt.date | None = None
    """The simulated day of the newest one."""
    last_error: str | None = None
    """Its exception; None when the process stopped before it could be recorded."""

    def describe(self) -> str:
        """The failures in a sentence a person can check."""
        what = self.last_error or "no record: the process stopped during the retrain"
        times = "once" if self.count == 1 else f"{self.count} times in a row"
        return f"retraining failed {times}, last on {self.last_day} ({what})"


def hold_failing_retrain(
    decision: Decision, failures: RetrainFailures, params: MonitoringParams, today: dt.date
) -> Decision:
    """A retrain after failed ones: held back for the back-off, refused with an alert after too many."""
    if decision.action != "retrain" or failures.count == 0 or failures.last_day is None:
        return decision
    if failures.count >= params.max_retrain_failures:
        alert = (
            f"alert: {failures.describe()}; no automatic retrain after {params.max_retrain_failures} "
            "failures: fix the cause, then run `fraudops train`"
        )
        return Decision("alert", [alert, *decision.reasons])
    wait = params.retry_backoff_days * 2 ** (failures.count - 1)
    days = (today - failures.last_day).days
    if days < wait:
        held = f"backoff: {failures.describe()}; next attempt {wait} days after it, {days} < {wait}"
        return Decision("backoff", [held, *decision.reasons])
    return decision


def ap_floor(expected: Expected, params: MonitoringParams) -> tuple[float, str]:
    """The live AP below which performance has dropped, and how it was set."""
    std = expected.average_precision_std
    mean = expected.average_precision
    if expected.folds >= 2 and std is not None and math.isfinite(std):
        return (
            mean - params.ap_drop_std * std,
            f"mean {mean:.2f} - {params.ap_drop_std:g} x std {std:.2f} of {expected.folds} {expected.source}",
        )
    return mean - params.ap_drop, f"expected {mean:.2f} - ap_drop {params.ap_drop}"


def decide(
    drift: DriftResult | None,
    live: LivePerformance | None,
    expected: Expected | None,
    params: MonitoringParams,
    today: dt.date,
    last_retrain: dt.date | None,
    rows: int,
    labelled_frauds: int,
) -> Decision:
    """Apply the policy to one monitoring run."""
    if rows < params.min_rows:
        return Decision(
            "not-enough-data",
            [f"only {rows} scored transactions in the window (< min_rows {params.min_rows}): no judgement"],
        )
    judged = [
        judge_drift(drift),
        judge_prediction_drift(drift, params),
        judge_performance(live, expected, params, labelled_frauds),
    ]
    judged = [(reason, alarm) for reason, alarm in judged if reason]
    triggers = [reason for reason, alarm in judged if alarm]
    if not triggers:
        return Decision("none", [reason for reason, _ in judged])
    if last_retrain is not None and 0 <= (today - last_retrain).days < params.cooldown_days:
        days = (today - last_retrain).days
        held = f"cooldown: last retrain on {last_retrain}, {days} < {params.cooldown_days} days ago"
        return Decision("cooldown", [held, *triggers])
    return Decision("retrain", triggers)


def judge_drift(drift: DriftResult | None) -> tuple[str, bool]:
    """A sentence on Evidently's dataset-drift verdict, and whether it is an alarm."""
    if drift is None:
        return "dataset drift not checked (no reference sample)", False
    counted = f"{len(drift.drifted_columns)}/{drift.n_columns} columns drifted"
    if drift.drifted:
        shown = drift.drifted_columns[:4]
        more = len(drift.drifted_columns) - len(shown)
        columns = ", ".join(shown) + (f" and {more} more" if more else "")
        return f"dataset drift: {counted} (share {drift.share:.2f} >= {drift.drift_share}): {columns}", True
    return f"no dataset drift: {counted} (share {drift.share:.2f} < {drift.drift_share})", False


def judge_prediction_drift(drift: DriftResult | None, params: MonitoringParams) -> tuple[str, bool]:
    """A sentence on the score distribution's drift (empty when it was not checked), and whether it alarms."""
    if drift is None or drift.prediction is None:
        return "", False
    test = drift.prediction
    compared = f"{test.method} {test.score:.3f}"
    if not test.drifted:
        return f"no prediction drift: {compared} < {test.threshold:g}", False
    if params.prediction_drift_retrains:
        return f"prediction drift: {compared} >= {test.threshold:g}", True
    return f"prediction drift: {compared} >= {test.threshold:g} (not a retrain trigger)", False


def judge_performance(
    live: LivePerformance | None, expected: Expected | None, params: MonitoringParams, labelled_frauds: int
) -> tuple[str, bool]:
    """A sentence on live average precision against the champion's validation figures, and whether it alarms."""
    if labelled_frauds < params.min_labelled_frauds:
        return (
            f"performance not judged: {labelled_frauds} labelled frauds "
            f"(< min_labelled_frauds {params.min_labelled_frauds})",
            False,
        )
    if live is None or not live.measured or live.average_precision is None:
        why = live.reason if live else "no labelled window"
        return f"performance not judged: {why}", False
    ap = live.average_precision
    if expected is None:
        return f"live AP {ap:.2f}; no expected AP recorded for the model", False
    floor, how = ap_floor(expected, params)
    chance = live.average_precision_random or 0.0
    if floor <= chance:  # even a useless model would pass: say so rather than pretend to watch
        return (
            f"live AP {ap:.2f} vs expected {expected.average_precision:.2f}: no performance alarm possible,"
            f" the floor ({how} = {floor:.2f}) is not above the random baseline {chance:.3f}",
            False,
        )
    if ap < floor:
        return (
            f"performance drop: live AP {ap:.2f} < {how} = {floor:.2f} ({labelled_frauds} labelled frauds)",
            True,
        )
    return f"live AP {ap:.2f} vs expected {expected.average_precision:.2f} (alarm below {floor:.2f})", False
