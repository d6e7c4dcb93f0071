"""Exercise 3's check: a raw day with zero-amount rows goes through the real validation stage.

One simulated day is written as the raw store's day file, some of its rows get an amount of exactly
0, and ``pipelines.validate.validate_days`` (what the DVC stage runs) splits it: the zero rows must
be quarantined with the rule's reason, every other row accepted, small amounts included.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from exercises._common import Check, use_this_project  # noqa: E402

DAY = dt.date(2026, 2, 2)
REASON = "tx_amount: zero amount"


def main() -> None:
    """Validate one raw day holding zero, small and ordinary amounts."""
    use_this_project()

    from core.schemas import TRANSACTION_COLUMNS, TransactionSchema
    from core.simulator import SimulationConfig, write_simulation
    from pipelines.validate import batch_accounts, validate_days

    check = Check("exercise 3 (quarantine zero amounts)")
    with tempfile.TemporaryDirectory() as tmp:
        sim = Path(tmp) / "sim"
        _, tx = write_simulation(sim, SimulationConfig(customers=200, terminals=400, days=1, start_date=DAY))
        day = tx[TRANSACTION_COLUMNS].reset_index(drop=True)
        zero_ids = set(day["transaction_id"].iloc[[3, 40, 41]])
        small_ids = set(day["transaction_id"].iloc[[10, 11]])
        day.loc[day["transaction_id"].isin(zero_ids), "tx_amount"] = 0.0
        day.loc[day["transaction_id"].isin(small_ids), "tx_amount"] = [0.01, 0.49]
        raw = Path(tmp) / "raw"
        raw.mkdir()
        day.to_parquet(raw / f"{DAY}.parquet", index=False)
        result = validate_days(raw, TRANSACTION_COLUMNS, TransactionSchema)
        bad = result.quarantined
        quarantined = dict(zip(bad.get("transaction_id", []), bad.get("reason", []), strict=True))
        accepted = set(result.valid["transaction_id"])

        def zero_rows() -> list[str]:
            kept = sorted(zero_ids & accepted)
            if kept:
                return [
                    f"{len(kept)} of the {len(zero_ids)} rows with tx_amount 0 were accepted: {', '.join(kept)}"
                ]
            wrong = {tid: quarantined.get(tid) for tid in zero_ids if REASON not in quarantined.get(tid, "")}
            if wrong:
                return [f"zero-amount rows are quarantined without the reason '{REASON}': {wrong}"]
            return []

        def good_rows() -> list[str]:
            lost = {tid: quarantined[tid] for tid in set(quarantined) - zero_ids}
            problems = []
            if set(lost) & small_ids:
                problems.append(
                    "small but real amounts (0.01, 0.49) are quarantined: only exactly 0 is the rule"
                )
            if lost:
                shown = dict(list(lost.items())[:3])
                problems.append(f"{len(lost)} valid row(s) quarantined, e.g. {shown}")
            missing = set(day["transaction_id"]) - zero_ids - accepted - set(lost)
            if missing:
                problems.append(f"{len(missing)} valid row(s) neither accepted nor quarantined")
            return problems

        def accounts() -> list[str]:
            counts = batch_accounts(result)[f"{DAY}.parquet"]
            if counts["rows"] != len(day):
                return [f"rows in ({len(day)}) != accepted + duplicates + quarantined ({counts})"]
            return []

        check.step("rows with tx_amount 0 are quarantined with the rule's reason", zero_rows)
        check.step("every other row is accepted, small amounts included", good_rows)
        check.step("every row of the day is accounted for", accounts)
    check.finish()


if __name__ == "__main__":
    main()
