"""Exercise 5's check: a policy rule for critical columns, through ``monitoring.policy.decide``.

Monitoring runs are built from Evidently-shaped results (one column's test each) and judged with
this project's ``params.yaml``; the parameter validation is tried on a copy of it.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from exercises._common import Check, use_this_project  # noqa: E402

TODAY = dt.date(2026, 4, 20)
COLUMNS = ["tx_amount", "tx_during_weekend", "tx_during_night", "customer_nb_tx_1d", "customer_avg_amount_1d"]


def main() -> None:
    """Drift of a critical column alone, of another column alone, under a cool-down; bad parameters."""
    root = use_this_project()
    import yaml

    from core.params import load_params
    from monitoring.drift import ColumnTest, DriftResult
    from monitoring.performance import Expected, LivePerformance
    from monitoring.policy import decide

    params = load_params(root / "params.yaml").monitoring
    check = Check("exercise 5 (a rule for critical columns)")

    def run(drifted: list[str], last_retrain: dt.date | None = None) -> Any:
        tests = {
            c: ColumnTest(
                method="wasserstein", score=0.3 if c in drifted else 0.01, threshold=0.1, drifted=c in drifted
            )
            for c in COLUMNS + [f"other_{i}" for i in range(10)]
        }
        drift = DriftResult(
            drifted=False,  # 1 column of 15: far below drift_share, no dataset drift
            share=len(drifted) / len(tests),
            drifted_columns=drifted,
            n_columns=len(tests),
            column_scores=tests,
            html_path=None,
        )
        live = LivePerformance(
            rows=3000, frauds=40, measured=True, average_precision=0.7, average_precision_random=0.01
        )
        expected = Expected(
            average_precision=0.7, average_precision_std=0.03, folds=4, source="prequential folds"
        )
        return decide(drift, live, expected, params, TODAY, last_retrain, rows=3000, labelled_frauds=40)

    def configured() -> list[str]:
        critical = getattr(params, "critical_columns", None)
        if critical is None:
            return [
                "MonitoringParams has no critical_columns: params.yaml's monitoring block does not name them"
            ]
        if "tx_amount" not in critical:
            return [f"critical_columns is {critical}: the task makes tx_amount critical"]
        return []

    def critical_alone() -> list[str]:
        decision = run(["tx_amount"])
        if decision.action != "retrain":
            return [
                f"tx_amount drifted alone, the action is {decision.action!r}, not 'retrain': {decision.reasons}"
            ]
        if not any("critical" in r and "tx_amount" in r for r in decision.reasons):
            return [f"no reason names the critical column tx_amount: {decision.reasons}"]
        return []

    def other_alone() -> list[str]:
        decision = run(["customer_nb_tx_1d"])
        if decision.action != "none":
            return [f"a column that is not critical drifted alone, yet the action is {decision.action!r}"]
        return []

    def cooldown() -> list[str]:
        decision = run(["tx_amount"], last_retrain=TODAY - dt.timedelta(days=3))
        if decision.action != "cooldown":
            return [
                f"3 days after a retrain the action is {decision.action!r}: the cool-down must still hold it"
            ]
        return []

    def refused() -> list[str]:
        raw = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
        raw["monitoring"]["critical_columns"] = ["tx_amout"]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "params.yaml"
            path.write_text(yaml.safe_dump(raw), encoding="utf-8")
            try:
                load_params(path)
            except ValueError as exc:
                return [] if "tx_amout" in str(exc) else [f"the error does not name the column: {exc}"]
        return [
            "critical_columns: [tx_amout] (a typo) is accepted: a rule on a column that does not exist never fires"
        ]

    check.step("params.yaml names tx_amount as a critical column", configured)
    if check.missing:
        check.finish()
    check.step("tx_amount drifting alone asks for a retrain, with a reason naming it", critical_alone)
    check.step("another column drifting alone changes nothing", other_alone)
    check.step("the cool-down still holds the retrain back", cooldown)
    check.step("a critical column that is not a feature is refused when params.yaml is loaded", refused)
    check.finish()


if __name__ == "__main__":
    main()
