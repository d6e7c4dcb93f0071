"""The retraining policy: what the monitor's evidence calls for, with reasons a person can check.

Order of the rules: too few scored rows stops everything (a small window makes false alarms); then
dataset drift (Evidently's verdict), prediction drift (when ``prediction_drift_retrains``) and a live
average precision below the champion's validation figures each ask for a retrain; a retrain asked for
within the cool-down after the last one is held back.

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

__all__ = ["Action", "Decision", "Expected", "ap_floor", "decide"]

Action = Literal["retrain", "none", "not-enough-data", "cooldown"]


@dataclass(frozen=True)
class Decision:
    """What to do, and why."""

    action: Action
    reasons: list[str] = field(default_factory=list)


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
