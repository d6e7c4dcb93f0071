"""Exercise 6's check: a new feature, the same offline (training) and online (serving).

It runs the project's real feature code: ``core.features.compute_features`` on a simulated table,
``core.online.OnlineFeatures`` on the same transactions streamed in uneven batches (single rows take
the plain-Python path, larger batches the numpy one), and then the project's own parity test.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from exercises._common import Check, use_this_project  # noqa: E402

FEATURE = "customer_amount_ratio_7d"
PARITY_TEST = "tests/unit/test_online_features.py::test_stream_reproduces_offline_features_bit_for_bit"
TOLERANCE = 1e-9


def main() -> None:
    """Definition, point-in-time correctness, parity with the online state, the parity test."""
    root = use_this_project()
    import numpy as np
    import pandas as pd

    from core.features import compute_features, feature_names
    from core.online import OnlineFeatures, epoch_seconds
    from core.params import load_params
    from core.simulator import SimulationConfig, write_simulation

    params = load_params(root / "params.yaml")
    fp, delay = params.features, params.data.label_delay_days
    check = Check("exercise 6 (a feature end to end, parity kept)")

    def named() -> list[str]:
        if FEATURE not in feature_names(fp):
            return [
                f"feature_names() has no {FEATURE}: the model, the service and the checks read names from it"
            ]
        return []

    check.step(f"{FEATURE} is one of the model's features", named)
    if check.missing:
        check.finish()

    def definition() -> list[str]:
        # customer 1: 10.00 on day 0, 30.00 on day 2 (7-day mean 20: ratio 1.5), 100.00 on day 20 (alone)
        when = pd.to_datetime(
            ["2026-01-01T10:00Z", "2026-01-03T10:00Z", "2026-01-21T10:00Z", "2026-01-21T11:00Z"]
        )
        frame = pd.DataFrame(
            {
                "transaction_id": ["a", "b", "c", "d"],
                "tx_datetime": when.astype("datetime64[us, UTC]"),
                "customer_id": [1, 1, 1, 2],
                "terminal_id": [5, 5, 5, 5],
                "tx_amount": [10.0, 30.0, 100.0, 0.0],
            }
        )
        got = compute_features(frame, np.zeros(4, dtype=np.int64), fp, delay)[FEATURE].tolist()
        want = [1.0, 1.5, 1.0, 0.0]
        if not np.allclose(got, want, atol=1e-6):
            return [
                f"on a hand-made history {FEATURE} is {got}, expected {want} (amount / 7-day mean; 0 when 0)"
            ]
        return []

    with tempfile.TemporaryDirectory() as tmp:
        cfg = SimulationConfig(customers=60, terminals=40, days=45, seed=3, start_date=dt.date(2026, 1, 1))
        _, tx = write_simulation(Path(tmp), cfg)
    tx = tx.sort_values("tx_datetime", kind="stable").reset_index(drop=True)
    fraud = (np.random.default_rng(0).random(len(tx)) < 0.2).astype(np.int64)
    offline = compute_features(tx, fraud, fp, delay)

    def point_in_time() -> list[str]:
        cut = int(len(tx) * 0.6)
        early = compute_features(tx.iloc[:cut], fraud[:cut], fp, delay)[FEATURE].to_numpy()
        full = offline[FEATURE].to_numpy()[:cut]
        moved = int(np.sum(np.abs(early - full) > TOLERANCE))
        if moved:
            return [
                f"{moved} of {cut} rows get another {FEATURE} once later transactions exist: the feature"
                " looks ahead (it must use only what was known at the transaction's time)"
            ]
        return []

    def parity() -> list[str]:
        state = OnlineFeatures(fp, delay)
        labels = dict(zip(tx["transaction_id"], fraud.tolist(), strict=True))
        online = []
        days = tx["tx_datetime"].dt.date
        for _, part in tx.groupby(days, sort=True):
            for start, size in ((0, 1), (1, 3), (4, 40), (44, 10**9)):  # Python path and numpy path
                chunk = part.iloc[start : start + size]
                if len(chunk):
                    rows = [
                        (str(t), epoch_seconds(w.to_pydatetime()), int(c), int(m), float(a))
                        for t, w, c, m, a in chunk[
                            ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]
                        ].itertuples(index=False)
                    ]
                    online.append(state.add_transactions(rows))
            state.add_labels({tid: labels[tid] for tid in part["transaction_id"]})
        got = np.concatenate(online)[:, state.names.index(FEATURE)].astype(np.float64)
        want = offline[FEATURE].to_numpy(dtype=np.float64)
        worst = float(np.max(np.abs(got - want)))
        if worst > TOLERANCE:
            at = int(np.argmax(np.abs(got - want)))
            return [
                f"online and offline {FEATURE} differ by up to {worst:.3g} (row {at}: online {got[at]:.6g},"
                f" offline {want[at]:.6g}); core.online must compute what core.features computes"
            ]
        if float(np.max(want)) == 0.0:
            return [f"{FEATURE} is 0 on every row"]
        return []

    def parity_test() -> list[str]:
        env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
        run = subprocess.run(
            [sys.executable, "-m", "pytest", PARITY_TEST, "-q", "-p", "no:cacheprovider", "--no-header"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            return [f"{PARITY_TEST} fails: {run.stdout.strip().splitlines()[-1]}"]
        return []

    check.step(f"{FEATURE} is the amount over the customer's 7-day mean", definition)
    check.step(f"{FEATURE} uses only the past (same value with or without later rows)", point_in_time)
    check.step(f"the service's online {FEATURE} equals training's within {TOLERANCE:g}", parity)
    check.step("the project's parity test passes", parity_test)
    check.finish()


if __name__ == "__main__":
    main()
