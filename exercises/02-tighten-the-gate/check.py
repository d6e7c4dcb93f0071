"""Exercise 2's check: the promotion gate, with this project's params.yaml, on recorded outcomes.

Each outcome is a pair of evaluations as training records them (the challenger's and the champion's
metrics on the same newest labelled window); ``pipelines.gate.judge`` decides and
``apply_decision`` moves an alias on a stand-in registry client that records the call.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from exercises._common import Check, use_this_project  # noqa: E402

CHAMPION = {"average_precision": 0.640, "card_precision_at_k": 0.300, "average_precision_random": 0.011}
# +0.015 AP and a better CP@k: promoted under the old margin of 0.01, refused under the team's 0.02
NARROW = {"average_precision": 0.655, "card_precision_at_k": 0.310, "average_precision_random": 0.011}
# +0.025 AP, same CP@k: clearly better, must still be promoted
CLEAR = {"average_precision": 0.665, "card_precision_at_k": 0.300, "average_precision_random": 0.011}
# first models (no champion yet) 0.06 and 0.045 above the random baseline: the first-model rule
# (first_model_ap_margin 0.05) promotes the one and refuses the other, before and after the change
FIRST = {"average_precision": 0.071, "card_precision_at_k": 0.12, "average_precision_random": 0.011}
WEAK_FIRST = {"average_precision": 0.056, "card_precision_at_k": 0.10, "average_precision_random": 0.011}


class RecordingClient:
    """Stands in for MLflow's client: records which alias would point at which version."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.calls.append((name, alias, version))


def main() -> None:
    """Judge the three outcomes with the project's gate parameters."""
    root = use_this_project()
    from core.params import load_params
    from pipelines.gate import apply_decision, judge

    check = Check("exercise 2 (tighten the gate)")
    gate = load_params(root / "params.yaml").gate

    def narrow() -> list[str]:
        decision = judge(NARROW, CHAMPION, gate)
        client = RecordingClient()
        alias = apply_decision(client, "fraud-detector", "7", decision)
        if decision.promote:
            return [
                "a challenger only 0.015 AP above the champion is still promoted "
                f"({'; '.join(decision.reasons)}): the team wants at least 0.02"
            ]
        if client.calls != [("fraud-detector", "challenger", "7")] or alias != "challenger":
            return [f"the refused version should be tagged challenger, got {client.calls}"]
        return []

    def clear() -> list[str]:
        decision = judge(CLEAR, CHAMPION, gate)
        if not decision.promote:
            return [
                f"a challenger 0.025 AP better with the same CP@k is refused ({'; '.join(decision.reasons)})"
            ]
        return []

    def first() -> list[str]:
        good, weak = judge(FIRST, None, gate), judge(WEAK_FIRST, None, gate)
        if good.promote and not weak.promote:
            return []
        changed = good if not good.promote else weak
        return [f"the first-model rule changed ({changed.reasons[0]}): the task keeps it as it was"]

    check.step("a challenger 0.015 AP better is refused and tagged challenger", narrow)
    check.step("a challenger 0.025 AP better is still promoted", clear)
    check.step("the first model's rule is unchanged", first)
    check.finish()


if __name__ == "__main__":
    main()
