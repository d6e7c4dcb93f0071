"""The retraining policy: what the monitor's evidence calls for, with reasons a person can check.

Order of the rules: too few scored rows stops everything (a small window makes false alarms); then
dataset drift (Evidently's verdict) and a live average precision below the expected one each ask for
a retrain; a retrain asked for within the cool-down after the last one is held back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from core.params import MonitoringParams
from monitoring.drift import DriftResult

Action = Literal["retrain", "none", "not-enough-data", "cooldown"]


@dataclass(frozen=True)
class Decision:
    """What to do, and why."""

    action: Action
    reasons: list[str] = field(default_factory=list)


def decide(
    drift: DriftResult | None,
    live: dict[str, Any] | None,
    expected_ap: float | None,
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
    drift_reason, drift_alarm = judge_drift(drift)
    perf_reason, perf_alarm = judge_performance(live, expected_ap, params, labelled_frauds)
    if not (drift_alarm or perf_alarm):
        return Decision("none", [drift_reason, perf_reason])
    triggers = [r for r, alarm in ((drift_reason, drift_alarm), (perf_reason, perf_alarm)) if alarm]
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


def judge_performance(
    live: dict[str, Any] | None, expected_ap: float | None, params: MonitoringParams, labelled_frauds: int
) -> tuple[str, bool]:
    """A sentence on live average precision against the expected one, and whether it is an alarm."""
    if labelled_frauds < params.min_labelled_frauds:
        return (
            f"performance not judged: {labelled_frauds} labelled frauds "
            f"(< min_labelled_frauds {params.min_labelled_frauds})",
            False,
        )
    if live is None or not live.get("measured"):
        why = live.get("reason") if live else "no labelled window"
        return f"performance not judged: {why}", False
    if expected_ap is None:
        return f"live AP {live['average_precision']:.2f}; no expected AP recorded for the model", False
    ap, floor = float(live["average_precision"]), expected_ap - params.ap_drop
    if ap < floor:
        return (
            f"performance drop: live AP {ap:.2f} < expected {expected_ap:.2f} - ap_drop {params.ap_drop}"
            f" = {floor:.2f} ({labelled_frauds} labelled frauds)",
            True,
        )
    return f"live AP {ap:.2f} vs expected {expected_ap:.2f} (alarm below {floor:.2f})", False
