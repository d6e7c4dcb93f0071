"""The model's features, one definition for training and serving (Fraud Detection Handbook design).

Windows are ``(t - w, t]`` on event time and include the transaction itself. Terminal windows are
shifted back by the label delay, ``(t - d - w, t - d]``, so terminal risk only uses labels that were
known when the transaction happened. Counts and sums come from sorted arrays and cumulative sums.

Sums are exact: amounts enter them as integers of ``1 / AMOUNT_SCALE`` currency units, so a window's
sum does not depend on which other rows were summed with it. That is what lets the service's
incremental state (:mod:`core.online`) reproduce these features to the last bit.
"""

from __future__ import annotations

from collections.abc import Callable

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
Window = tuple[int, np.ndarray, np.ndarray]  # width in seconds, count column, mean column
BLOCK_ROWS = 1 << 18  # rows of whole keys computed together: about 10 MB of int64 per array


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


def _key_time_order(keys: np.ndarray, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows in (key, time) order: that order and the packed ``key * SPAN + seconds``, sorted.

    Keys are offset by their minimum (ranked only when their range would overflow int64), so one
    argsort is the only sort. Ties need no stable order: a window takes equal values as a whole.
    """
    low = int(keys.min()) if len(keys) else 0
    if len(keys) == 0 or int(keys.max()) - low < np.iinfo(np.int64).max // SPAN - 1:
        relative = keys - low
    else:
        relative = np.unique(keys, return_inverse=True)[1].astype(np.int64)
    packed = relative * SPAN + seconds
    order = np.argsort(packed)
    return order, packed[order]


def _rows_through(sorted_packed: np.ndarray, back_s: int) -> np.ndarray:
    """Per sorted row, how many rows lie at or before its own time less ``back_s`` (same key).

    The needles are sorted too, so each binary search starts where the previous one ended and reads
    memory the previous one just read: searching in the rows' original order instead jumps across
    the whole array per row, and that cost per row grew with the data (cache misses).
    """
    return np.searchsorted(sorted_packed, sorted_packed - back_s, side="right")


def _window_sums(
    sorted_packed: np.ndarray, sorted_values: np.ndarray, windows_s: list[int], delay_s: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per sorted row and window ``w``, count and (exact, int64) sum of ``sorted_values`` over rows of
    the same key with time in (t - delay - w, t - delay], as float64."""
    cum = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(sorted_values, dtype=np.int64)])
    right = _rows_through(sorted_packed, delay_s)
    at_right = cum[right]
    out = []
    for w in windows_s:
        left = _rows_through(sorted_packed, delay_s + w)
        out.append(((right - left).astype(np.float64), (at_right - cum[left]).astype(np.float64)))
    return out


def _key_blocks(keys: np.ndarray) -> list[np.ndarray]:
    """The rows (ascending) in blocks of whole keys, about ``BLOCK_ROWS`` rows each.

    A window only reads rows of its own key, so each block is computed alone: its sort and searches
    stay in the CPU's cache whatever the data's size. Over all rows at once they did not, and the cost
    per row grew with the data. Blocks come from a count per key and one linear (radix) sort.
    """
    if len(keys) <= BLOCK_ROWS:
        return [np.arange(len(keys))]
    low = int(keys.min())
    if int(keys.max()) - low < 4 * len(keys):  # ids dense enough to count directly
        key_index = keys - low
    else:
        key_index = np.unique(keys, return_inverse=True)[1].astype(np.int64)
    per_key = np.bincount(key_index)
    block_of_key = (np.cumsum(per_key) - per_key) // BLOCK_ROWS  # by the rows of the keys before it
    block = block_of_key[key_index]
    small = block.astype(np.uint16) if block_of_key[-1] < 2**16 else block  # 16 bits: a radix sort
    rows = np.argsort(small, kind="stable")
    return np.split(rows, np.cumsum(np.bincount(block))[:-1])


def _key_features(
    keys: np.ndarray,
    seconds: np.ndarray,
    values: np.ndarray,
    windows: list[Window],
    delay_s: int,
    scale: int,
) -> None:
    """Per row, each window's count and mean of ``values / scale`` over rows of its key, written into
    the window's two float32 columns: ``windows`` holds (width in seconds, count column, mean column).

    Everything happens block by block (see ``_key_blocks``), down to the float32 columns: a pass over
    the whole data per step read and wrote memory far outside the cache.
    """
    for rows in _key_blocks(keys):
        # rows ascend, so these reads and the writes below walk memory forward; the block's own
        # reordering happens in its small arrays, never across the whole data
        order, packed = _key_time_order(keys[rows], seconds[rows])
        sums = _window_sums(packed, values[rows][order], [w for w, _, _ in windows], delay_s)
        local = np.empty(len(rows), dtype=np.float32)
        for (_, counts, means), (n, total) in zip(windows, sums, strict=True):
            local[order] = n
            counts[rows] = local
            total /= scale  # exact for scale 1: the terminals' sums are fraud counts
            local[order] = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
            means[rows] = local


def compute_features(
    transactions: pd.DataFrame, fraud: np.ndarray, params: FeatureParams, delay_days: int
) -> pd.DataFrame:
    """Features for every row of ``transactions`` (same order), as float32.

    ``fraud`` holds the known label of each row (1 fraud, 0 genuine or not yet known). Rows with equal
    key and timestamp count each other in, so results do not depend on arrival order.
    """
    names = feature_names(params)
    seconds = series_epoch_seconds(transactions["tx_datetime"])
    amount = transactions["tx_amount"].to_numpy(dtype=np.float64)
    # one float32 block, written column by column: the frame wraps it without a copy
    block = np.empty((len(names), len(transactions)), dtype=np.float32)
    columns = {
        "tx_amount": amount,
        "tx_during_weekend": weekend_flags(seconds),
        "tx_during_night": night_flags(seconds, params.night_end_hour),
    }
    for name, values in columns.items():
        block[names.index(name)] = values

    def window_columns(days: list[int], names_of: Callable[[int], tuple[str, str]]) -> list[Window]:
        return [(w * DAY_S, *(block[names.index(name)] for name in names_of(w))) for w in days]

    cust = transactions["customer_id"].to_numpy(dtype=np.int64)
    customer = window_columns(params.customer_windows_days, customer_window_features)
    _key_features(cust, seconds, amount_units(amount), customer, 0, AMOUNT_SCALE)
    term = transactions["terminal_id"].to_numpy(dtype=np.int64)
    terminal = window_columns(params.terminal_windows_days, terminal_window_features)
    fraud_int = np.asarray(fraud).astype(np.int64)
    _key_features(term, seconds, fraud_int, terminal, delay_days * DAY_S, 1)
    return pd.DataFrame(block.T, index=transactions.index, columns=names, copy=False)
