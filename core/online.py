"""The features of :mod:`core.features`, kept up to date one transaction at a time for the service.

Training computes features for a whole table at once with sorted arrays; the service cannot recompute
a table per request. This state keeps, per customer and per terminal, the time-sorted transactions any
window can still reach, and answers each window with two binary searches and an exact integer sum.
The window bounds, the amount units and the flags are those of :mod:`core.features`, so a stream
replayed through the service yields the offline features bit for bit (the parity test checks it).

A batch is inserted before its rows are computed, so rows of one batch with the same key and timestamp
count each other in, as they do offline. A transaction id seen before replaces its earlier row.
"""

from __future__ import annotations

import datetime as dt
import threading
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.features import (
    AMOUNT_SCALE,
    DAY_S,
    EPOCH_WEEKDAY,
    _epoch_seconds,
    feature_names,
    horizon_days,
)
from core.params import FeatureParams

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ONE_SECOND = dt.timedelta(seconds=1)
PRUNE_STEP_S = 3600  # rows past the horizon are dropped once the cutoff moved an hour

# (transaction id, epoch seconds, customer id, terminal id, amount)
Row = tuple[str, int, int, int, float]


def epoch_seconds(when: dt.datetime) -> int:
    """Whole seconds since the epoch of an aware datetime, floored as :mod:`core.features` does."""
    return (when - EPOCH) // ONE_SECOND


@dataclass(slots=True)
class _Series:
    """One customer's or terminal's transactions, sorted by time (ties in arrival order).

    ``cum`` holds running totals of the rows' values (amount units for a customer, known fraud labels
    for a terminal): the rows from ``lo`` to ``hi`` sum to ``cum[hi] - cum[lo]``, exactly, in O(1).
    Appending and dropping the oldest row, the usual changes, keep the totals valid as they are.
    """

    times: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    cum: list[int] = field(default_factory=lambda: [0])

    def insert(self, seconds: int, tid: str, value: int) -> None:
        times, cum = self.times, self.cum
        if not times or seconds >= times[-1]:
            times.append(seconds)
            self.ids.append(tid)
            cum.append(cum[-1] + value)
            return
        at = bisect_right(times, seconds)
        times.insert(at, seconds)
        self.ids.insert(at, tid)
        cum.insert(at + 1, cum[at] + value)
        if value:
            cum[at + 2 :] = [total + value for total in cum[at + 2 :]]

    def position(self, seconds: int, tid: str) -> int:
        """Index of the row ``tid`` at ``seconds``, or -1 when the series no longer holds it."""
        times, ids = self.times, self.ids
        if ids and ids[0] == tid:
            return 0
        at = bisect_left(times, seconds)
        while at < len(ids) and times[at] == seconds:
            if ids[at] == tid:
                return at
            at += 1
        return -1

    def trim(self, cutoff: int) -> None:
        """Drop the rows at or before ``cutoff`` (the oldest: the totals after them stay valid)."""
        drop = bisect_right(self.times, cutoff)
        if drop:
            del self.times[:drop], self.ids[:drop], self.cum[:drop]

    def remove(self, seconds: int, tid: str) -> None:
        at = self.position(seconds, tid)
        if at < 0:
            return
        cum = self.cum
        value = cum[at + 1] - cum[at]
        del self.times[at], self.ids[at]
        if at == 0:  # the oldest row: the totals after it stay valid differences
            del cum[0]
            return
        del cum[at + 1]
        if value:
            cum[at + 1 :] = [total - value for total in cum[at + 1 :]]

    def set_value(self, seconds: int, tid: str, value: int) -> None:
        at = self.position(seconds, tid)
        if at < 0:
            return
        cum = self.cum
        delta = value - (cum[at + 1] - cum[at])
        if delta:
            cum[at + 1 :] = [total + delta for total in cum[at + 1 :]]


class OnlineFeatures:
    """Bounded per-customer and per-terminal history plus known labels; thread-safe."""

    def __init__(self, params: FeatureParams, delay_days: int) -> None:
        self.names = feature_names(params)
        self._customer_windows = [w * DAY_S for w in params.customer_windows_days]
        self._terminal_windows = [w * DAY_S for w in params.terminal_windows_days]
        self._delay_s = delay_days * DAY_S
        self._night_end_hour = params.night_end_hour
        self._horizon_s = horizon_days(params, delay_days) * DAY_S
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._customers: dict[int, _Series] = {}
        self._terminals: dict[int, _Series] = {}
        self._where: dict[str, tuple[int, int, int]] = {}  # id -> (seconds, customer, terminal)
        self._labels: dict[str, int] = {}
        # (seconds, id) in arrival order: nearly time order, so the oldest rows leave from the left; a
        # late-arriving old row waits behind newer ones and leaves a little later, which changes nothing
        self._expiry: deque[tuple[int, str]] = deque()
        self._newest: int | None = None
        self._pruned_to: int | None = None

    @property
    def rows(self) -> int:
        """Transactions held."""
        return len(self._where)

    @property
    def known_labels(self) -> int:
        """Labels held (only for transactions in the history)."""
        return len(self._labels)

    def warm_start(self, transactions: pd.DataFrame, labels: Mapping[str, int]) -> None:
        """Replace the state with ``transactions`` (pruned to the horizon) and their known labels."""
        seconds = _epoch_seconds(pd.to_datetime(transactions["tx_datetime"], utc=True))
        cutoff = int(seconds.max()) - self._horizon_s if len(seconds) else 0
        keep = np.flatnonzero(seconds > cutoff)
        order = keep[np.argsort(seconds[keep], kind="stable")]
        rows = zip(
            transactions["transaction_id"].astype(str).to_numpy()[order].tolist(),
            seconds[order].tolist(),
            transactions["customer_id"].to_numpy(dtype=np.int64)[order].tolist(),
            transactions["terminal_id"].to_numpy(dtype=np.int64)[order].tolist(),
            transactions["tx_amount"].to_numpy(dtype=np.float64)[order].tolist(),
            strict=True,
        )
        with self._lock:
            self._clear()
            self._labels = {tid: int(v) for tid, v in labels.items()}
            self._insert(list(rows))
            self._labels = {tid: v for tid, v in self._labels.items() if tid in self._where}
            self._pruned_to = cutoff if len(seconds) else None

    def record(self, rows: Sequence[Row]) -> np.ndarray:
        """Add ``rows`` to the history and return their features (float32, rows x :attr:`names`)."""
        with self._lock:
            self._insert(rows)
            flat: list[float] = []
            for row in rows:
                self._features(row, flat)
            self._prune()
        return np.array(flat, dtype=np.float64).reshape(len(rows), len(self.names)).astype(np.float32)

    def add_labels(self, labels: Mapping[str, int]) -> int:
        """Record fraud labels; returns how many concern transactions in the history.

        Labels of transactions outside the history cannot change any feature, so they are not kept.
        """
        with self._lock:
            where, terminals = self._where, self._terminals
            known = {tid: int(v) for tid, v in labels.items() if tid in where}
            for tid, value in known.items():
                if value != self._labels.get(tid, 0):
                    seconds, _, terminal = where[tid]
                    terminals[terminal].set_value(seconds, tid, value)
            self._labels.update(known)
        return len(known)

    def _insert(self, rows: Sequence[Row]) -> None:
        customers, terminals, where, labels = self._customers, self._terminals, self._where, self._labels
        expiry = self._expiry
        for tid, seconds, customer, terminal, amount in rows:
            if tid in where:
                self._forget(tid)
            units = round(amount * AMOUNT_SCALE)
            series = customers.get(customer)
            if series is None:
                series = customers[customer] = _Series()
            series.insert(seconds, tid, units)
            series = terminals.get(terminal)
            if series is None:
                series = terminals[terminal] = _Series()
            series.insert(seconds, tid, labels.get(tid, 0))
            where[tid] = (seconds, customer, terminal)
            expiry.append((seconds, tid))
            if self._newest is None or seconds > self._newest:
                self._newest = seconds

    def _features(self, row: Row, values: list[float]) -> None:
        """Append the row's features, in :attr:`names` order, to ``values``."""
        _, seconds, customer, terminal, amount = row
        day, second_of_day = divmod(seconds, DAY_S)
        values += (
            amount,
            1.0 if (day + EPOCH_WEEKDAY) % 7 >= 5 else 0.0,
            1.0 if second_of_day // 3600 < self._night_end_hour else 0.0,
        )
        series = self._customers[customer]
        times, cum = series.times, series.cum
        hi = bisect_right(times, seconds)
        for window in self._customer_windows:
            lo = bisect_right(times, seconds - window, 0, hi)
            n = hi - lo
            values += (n, ((cum[hi] - cum[lo]) / AMOUNT_SCALE) / n if n else 0.0)
        series = self._terminals[terminal]
        times, cum = series.times, series.cum
        end = seconds - self._delay_s
        hi = bisect_right(times, end)
        for window in self._terminal_windows:
            lo = bisect_right(times, end - window, 0, hi)
            n = hi - lo
            values += (n, (cum[hi] - cum[lo]) / n if n else 0.0)

    def _forget(self, tid: str) -> None:
        seconds, customer, terminal = self._where.pop(tid)
        self._labels.pop(tid, None)
        for entities, key in ((self._customers, customer), (self._terminals, terminal)):
            series = entities.get(key)
            if series is not None:
                series.remove(seconds, tid)
                if not series.times:
                    del entities[key]

    def _prune(self) -> None:
        """Drop rows no future window reaches (behind the newest transaction by the horizon)."""
        if self._newest is None:
            return
        cutoff = self._newest - self._horizon_s
        if self._pruned_to is not None and cutoff < self._pruned_to + PRUNE_STEP_S:
            return
        self._pruned_to = cutoff
        expiry, where, labels = self._expiry, self._where, self._labels
        customers: set[int] = set()
        terminals: set[int] = set()
        while expiry and expiry[0][0] <= cutoff:
            seconds, tid = expiry.popleft()
            held = where.get(tid)
            if held is not None and held[0] == seconds:
                del where[tid]
                labels.pop(tid, None)
                customers.add(held[1])
                terminals.add(held[2])
        # each series touched loses its expired rows at once, with one binary search
        for entities, keys in ((self._customers, customers), (self._terminals, terminals)):
            for key in keys:
                series = entities.get(key)
                if series is not None:
                    series.trim(cutoff)
                    if not series.times:
                        del entities[key]
