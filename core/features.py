"""The model's features, one definition for training and serving (Fraud Detection Handbook design).

Windows are ``(t - w, t]`` on event time and include the transaction itself. Terminal windows are
shifted back by the label delay, ``(t - d - w, t - d]``, so terminal risk only uses labels that were
known when the transaction happened. Counts and sums come from sorted arrays and cumulative sums.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.params import FeatureParams

DAY_S = 86_400


def feature_names(params: FeatureParams) -> list[str]:
    """Column names in model order."""
    names = ["tx_amount", "tx_during_weekend", "tx_during_night"]
    for w in params.customer_windows_days:
        names += [f"customer_nb_tx_{w}d", f"customer_avg_amount_{w}d"]
    for w in params.terminal_windows_days:
        names += [f"terminal_nb_tx_{w}d", f"terminal_risk_{w}d"]
    return names


def horizon_days(params: FeatureParams, delay_days: int) -> int:
    """How far back any feature window reaches: features of a transaction need this much history."""
    return max(max(params.customer_windows_days), max(params.terminal_windows_days) + delay_days)


def _epoch_seconds(ts: pd.Series) -> np.ndarray:
    return ts.dt.tz_convert("UTC").astype("datetime64[us, UTC]").astype("int64").to_numpy() // 1_000_000


def _window_sums(
    keys: np.ndarray, seconds: np.ndarray, values: np.ndarray, lo_s: int, hi_s: int, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, count and sum of ``values`` over rows with the same key and time in (t-lo, t-hi]."""
    span = np.int64(10) ** 11  # wider than any timestamp in seconds, so keys never overlap
    dense = np.unique(keys, return_inverse=True)[1].astype(np.int64)  # small keys: no int64 overflow
    packed = dense * span + seconds
    sorted_packed = packed[order]
    cum = np.concatenate([[0.0], np.cumsum(values[order], dtype=np.float64)])
    left = np.searchsorted(sorted_packed, packed - lo_s, side="right")
    right = np.searchsorted(sorted_packed, packed - hi_s, side="right")
    return (right - left).astype(np.float64), cum[right] - cum[left]


def compute_features(
    transactions: pd.DataFrame, fraud: np.ndarray, params: FeatureParams, delay_days: int
) -> pd.DataFrame:
    """Features for every row of ``transactions`` (same order), as float32.

    ``fraud`` holds the known label of each row (1 fraud, 0 genuine or not yet known). Rows with equal
    key and timestamp count each other in, so results do not depend on arrival order.
    """
    seconds = _epoch_seconds(transactions["tx_datetime"])
    amount = transactions["tx_amount"].to_numpy(dtype=np.float64)
    local = transactions["tx_datetime"].dt.tz_convert("UTC")
    out: dict[str, np.ndarray] = {
        "tx_amount": amount,
        "tx_during_weekend": (local.dt.weekday >= 5).to_numpy(dtype=np.float64),
        "tx_during_night": (local.dt.hour < params.night_end_hour).to_numpy(dtype=np.float64),
    }
    cust = transactions["customer_id"].to_numpy(dtype=np.int64)
    c_order = np.lexsort((seconds, cust))
    for w in params.customer_windows_days:
        n, total = _window_sums(cust, seconds, amount, w * DAY_S, 0, c_order)
        out[f"customer_nb_tx_{w}d"] = n
        out[f"customer_avg_amount_{w}d"] = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    term = transactions["terminal_id"].to_numpy(dtype=np.int64)
    t_order = np.lexsort((seconds, term))
    delay_s = delay_days * DAY_S
    fraud64 = np.asarray(fraud, dtype=np.float64)
    for w in params.terminal_windows_days:
        n, frauds = _window_sums(term, seconds, fraud64, delay_s + w * DAY_S, delay_s, t_order)
        out[f"terminal_nb_tx_{w}d"] = n
        out[f"terminal_risk_{w}d"] = np.divide(frauds, n, out=np.zeros_like(frauds), where=n > 0)
    frame = pd.DataFrame(out, index=transactions.index)
    return frame[feature_names(params)].astype(np.float32)
