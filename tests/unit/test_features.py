"""Features: the cumulative-sum implementation agrees with a brute-force reference, without leakage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core.features
from core.features import DAY_S, compute_features, feature_names
from core.params import Params
from core.simulator import SimulationConfig, write_simulation


def brute_force(tx: pd.DataFrame, fraud: np.ndarray, params: Params) -> pd.DataFrame:
    """Row by row, straight from the definitions."""
    secs = tx["tx_datetime"].astype("int64").to_numpy() // 10**6
    delay = params.data.label_delay_days * DAY_S
    rows = []
    for i in range(len(tx)):
        t, c, m = secs[i], tx["customer_id"].iat[i], tx["terminal_id"].iat[i]
        row = {"tx_amount": tx["tx_amount"].iat[i]}
        ts = tx["tx_datetime"].iat[i]
        row["tx_during_weekend"] = float(ts.weekday() >= 5)
        row["tx_during_night"] = float(ts.hour < params.features.night_end_hour)
        for w in params.features.customer_windows_days:
            sel = (tx["customer_id"].to_numpy() == c) & (secs > t - w * DAY_S) & (secs <= t)
            row[f"customer_nb_tx_{w}d"] = sel.sum()
            row[f"customer_avg_amount_{w}d"] = tx["tx_amount"].to_numpy()[sel].mean()
        for w in params.features.terminal_windows_days:
            sel = (tx["terminal_id"].to_numpy() == m) & (secs > t - delay - w * DAY_S) & (secs <= t - delay)
            row[f"terminal_nb_tx_{w}d"] = sel.sum()
            row[f"terminal_risk_{w}d"] = fraud[sel].mean() if sel.any() else 0.0
        rows.append(row)
    return pd.DataFrame(rows)[feature_names(params.features)].astype(np.float32)


def small_world(tmp_path: Path, days: int = 20) -> pd.DataFrame:
    cfg = SimulationConfig(customers=30, terminals=20, days=days, seed=5, start_date=dt.date(2026, 1, 1))
    _, tx = write_simulation(tmp_path, cfg)
    return tx


def test_matches_brute_force(tmp_path: Path, params: Params) -> None:
    tx = small_world(tmp_path)
    # denser labels than the simulator's 1 % so that every terminal window holds some fraud
    fraud = (np.random.default_rng(0).random(len(tx)) < 0.2).astype(float)
    fast = compute_features(tx, fraud, params.features, params.data.label_delay_days)
    slow = brute_force(tx, fraud, params)
    assert fast.dtypes.unique().tolist() == [np.dtype("float32")]
    assert len(fast.columns) == 15
    np.testing.assert_allclose(fast.to_numpy(), slow.to_numpy(), atol=1e-9, rtol=0)
    assert fast["terminal_risk_7d"].max() > 0  # the check above is not vacuous


def test_appending_later_data_does_not_change_earlier_features(tmp_path: Path, params: Params) -> None:
    tx = small_world(tmp_path)
    cut = tx["tx_datetime"] < pd.Timestamp("2026-01-12", tz="UTC")
    fraud = tx["tx_fraud"].to_numpy(dtype=float)
    full = compute_features(tx, fraud, params.features, 7)
    early = compute_features(tx[cut], fraud[cut.to_numpy()], params.features, 7)
    pd.testing.assert_frame_equal(full[cut.to_numpy()], early)


def test_row_order_does_not_matter(tmp_path: Path, params: Params) -> None:
    tx = small_world(tmp_path, days=10)
    fraud = tx["tx_fraud"].to_numpy(dtype=float)
    shuffled = tx.sample(frac=1.0, random_state=1)
    a = compute_features(tx, fraud, params.features, 7)
    b = compute_features(shuffled, fraud[shuffled.index.to_numpy()], params.features, 7).loc[tx.index]
    pd.testing.assert_frame_equal(a, b)


def test_blocks_of_keys_match_brute_force(monkeypatch: pytest.MonkeyPatch, params: Params) -> None:
    # many small blocks, sparse keys far apart, shuffled rows and equal timestamps: the blocked
    # computation must still equal the definitions row by row
    monkeypatch.setattr(core.features, "BLOCK_ROWS", 40)
    rng = np.random.default_rng(11)
    n = 600
    start = pd.Timestamp("2026-01-01", tz="UTC").value // 10**9
    seconds = start + rng.integers(0, 40 * DAY_S, n)
    seconds[::7] = seconds[0]  # ties across and within keys
    tx = pd.DataFrame(
        {
            "tx_datetime": pd.to_datetime(seconds, unit="s", utc=True).astype("datetime64[us, UTC]"),
            "customer_id": rng.choice([3, 10**9, 5 * 10**12, 7], n),
            "terminal_id": rng.integers(0, 25, n),
            "tx_amount": np.round(rng.uniform(0, 300, n), 2),
        }
    )
    fraud = (rng.random(n) < 0.3).astype(float)
    fast = compute_features(tx, fraud, params.features, params.data.label_delay_days)
    np.testing.assert_allclose(fast.to_numpy(), brute_force(tx, fraud, params).to_numpy(), atol=1e-9, rtol=0)
    assert fast["terminal_risk_30d"].max() > 0
