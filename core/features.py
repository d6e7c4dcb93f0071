"""The model's features, one definition for training and serving (Fraud Detection Handbook design).

Windows are ``(t - w, t]`` on event time and include the transaction itself. Terminal windows are
shifted back by the label delay, ``(t - d - w, t - d]``, so terminal risk only uses labels that were
known when the transaction happened. Counts and sums come from sorted arrays and cumulative sums.

Sums are exact: amounts enter them as integers of ``1 / AMOUNT_SCALE`` currency units, so a window's
sum does not depend on which other rows were summed with it. That is what lets the service's
incremental state (:mod:`core.online`) reproduce these features to the last bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# feature_names is defined beside FeatureParams (core.params) and offered here, where callers look for it
from core.params import (
    FeatureParams,
    customer_window_features,
    feature_names,
    terminal_window_features,
)

__all__ = [
    "AMOUNT_SCALE",
    "DAY_S",
    "EPOCH_WEEKDAY",
    "SPAN",
    "amount_units",
    "compute_features",
    "feature_names",
    "horizon_days",
    "night_flags",
    "series_epoch_seconds",
    "weekend_flags",
]

DAY_S = 86_400
SPAN = 10**11  # wider than any timestamp in seconds: key * SPAN + seconds never mixes two keys
AMOUNT_SCALE = 10_000  # amounts are summed as integers of 1/10,000 currency unit (exact below 9e11)
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


def horizon_days(params: FeatureParams, delay_days: int) -> int:
    """How far back any feature window reaches: features of a transaction need this much history."""
    return max(max(params.customer_windows_days), max(params.terminal_windows_days) + delay_days)


def series_epoch_seconds(ts: pd.Series) -> np.ndarray:
    """Whole seconds since the epoch (floored) of a timezone-aware datetime column."""
    return ts.dt.tz_convert("UTC").astype("datetime64[us, UTC]").astype("int64").to_numpy() // 1_000_000


def amount_units(amount: np.ndarray) -> np.ndarray:
    """Amounts as int64 units of ``1 / AMOUNT_SCALE`` (round half to even, as Python's ``round``)."""
    return np.rint(np.asarray(amount, dtype=np.float64) * AMOUNT_SCALE).astype(np.int64)


def weekend_flags(seconds: np.ndarray) -> np.ndarray:
    """1.0 for a Saturday or Sunday (UTC) epoch second, else 0.0."""
    return ((seconds // DAY_S + EPOCH_WEEKDAY) % 7 >= 5).astype(np.float64)


def night_flags(seconds: np.ndarray, night_end_hour: int) -> np.ndarray:
    """1.0 for a UTC hour before ``night_end_hour``, else 0.0."""
    return ((seconds % DAY_S) // 3600 < night_end_hour).astype(np.float64)


def _window_sums(
    keys: np.ndarray, seconds: np.ndarray, values: np.ndarray, lo_s: int, hi_s: int, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, count and (exact, int64) sum of ``values`` over rows with the same key and time in
    (t-lo, t-hi]."""
    dense = np.unique(keys, return_inverse=True)[1].astype(np.int64)  # small keys: no int64 overflow
    packed = dense * SPAN + seconds
    sorted_packed = packed[order]
    cum = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(values[order], dtype=np.int64)])
    left = np.searchsorted(sorted_packed, packed - lo_s, side="right")
    right = np.searchsorted(sorted_packed, packed - hi_s, side="right")
    return (right - left).astype(np.float64), (cum[right] - cum[left]).astype(np.float64)


def compute_features(
    transactions: pd.DataFrame, fraud: np.ndarray, params: FeatureParams, delay_days: int
) -> pd.DataFrame:
    """Features for every row of ``transactions`` (same order), as float32.

    ``fraud`` holds the known label of each row (1 fraud, 0 genuine or not yet known). Rows with equal
    key and timestamp count each other in, so results do not depend on arrival order.
    """
    seconds = series_epoch_seconds(transactions["tx_datetime"])
    amount = transactions["tx_amount"].to_numpy(dtype=np.float64)
    out: dict[str, np.ndarray] = {
        "tx_amount": amount,
        "tx_during_weekend": weekend_flags(seconds),
        "tx_during_night": night_flags(seconds, params.night_end_hour),
    }
    cust = transactions["customer_id"].to_numpy(dtype=np.int64)
    c_order = np.lexsort((seconds, cust))
    units = amount_units(amount)
    for w in params.customer_windows_days:
        n, total = _window_sums(cust, seconds, units, w * DAY_S, 0, c_order)
        total /= AMOUNT_SCALE
        count_name, average_name = customer_window_features(w)
        out[count_name] = n
        out[average_name] = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    term = transactions["terminal_id"].to_numpy(dtype=np.int64)
    t_order = np.lexsort((seconds, term))
    delay_s = delay_days * DAY_S
    fraud_int = np.asarray(fraud).astype(np.int64)
    for w in params.terminal_windows_days:
        n, frauds = _window_sums(term, seconds, fraud_int, delay_s + w * DAY_S, delay_s, t_order)
        count_name, risk_name = terminal_window_features(w)
        out[count_name] = n
        out[risk_name] = np.divide(frauds, n, out=np.zeros_like(frauds), where=n > 0)
    frame = pd.DataFrame(out, index=transactions.index)
    return frame[feature_names(params)].astype(np.float32)
