"""Exercise 1's check: the answers in answers.yaml against what the policy code decides.

The expected values are computed here, by ``monitoring.policy`` on the scenario with this project's
params.yaml: there is no answer key to copy, and a change to the policy changes the answers.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from exercises._common import Check, use_this_project  # noqa: E402

TRIGGER_PREFIXES = {
    "dataset drift:": "dataset-drift",
    "prediction drift:": "prediction-drift",
    "performance drop:": "performance-drop",
}


def main() -> None:
    """Compare each answer with the policy's own result."""
    root = use_this_project()
    import yaml

    sys.path.insert(0, str(HERE))
    from scenario import TODAY, scenario

    from core.params import load_params
    from monitoring.policy import ap_floor, decide

    params = load_params(root / "params.yaml").monitoring
    evidence = scenario()
    decision = decide(params=params, today=TODAY, **evidence)
    floor, _ = ap_floor(evidence["expected"], params)
    triggers = sorted(
        name
        for reason in decision.reasons
        for prefix, name in TRIGGER_PREFIXES.items()
        if reason.startswith(prefix)
    )
    day = TODAY
    while decide(params=params, today=day, **evidence).action != "retrain" and day < TODAY + dt.timedelta(
        400
    ):
        day += dt.timedelta(days=1)
    answers: dict[str, Any] = yaml.safe_load((HERE / "answers.yaml").read_text(encoding="utf-8")) or {}
    check = Check("exercise 1 (read a monitoring decision)")

    def action() -> list[str]:
        given = answers.get("action")
        if not given:
            return ["answers.yaml has no action yet"]
        if str(given) != decision.action:
            return [f"action {given!r} is not what decide() returns: read its rules top to bottom"]
        return []

    def rules() -> list[str]:
        given = sorted(str(t) for t in answers.get("triggers") or [])
        if not given:
            return ["answers.yaml names no triggers yet"]
        extra, lacking = sorted(set(given) - set(triggers)), sorted(set(triggers) - set(given))
        problems = [
            f"{name} did not ask for a retrain (its judge_* function says no alarm)" for name in extra
        ]
        if lacking:
            problems.append(f"{len(lacking)} rule(s) that asked for a retrain are not listed")
        return problems

    def floor_value() -> list[str]:
        given = answers.get("ap_floor")
        if given is None:
            return ["answers.yaml has no ap_floor yet"]
        if abs(float(given) - floor) > 0.005:
            return [
                f"ap_floor {given} is not the floor ap_floor() computes (see its docstring and params.yaml)"
            ]
        return []

    def retrain_day() -> list[str]:
        given = answers.get("first_retrain_day")
        if not given:
            return ["answers.yaml has no first_retrain_day yet"]
        if dt.date.fromisoformat(str(given)) != day:
            return [f"on {given} decide() does not start the first retrain: count the cool-down's days again"]
        return []

    check.step("the action", action)
    check.step("the rules that triggered", rules)
    check.step("the performance floor", floor_value)
    check.step("the first day a retrain starts", retrain_day)
    check.finish()


if __name__ == "__main__":
    main()
