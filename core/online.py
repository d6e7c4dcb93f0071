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
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Protocol

import numpy as np
import pandas as pd

from core.features import (
    AMOUNT_SCALE,
    DAY_S,
    EPOCH_WEEKDAY,
    SPAN,
    amount_units,
    feature_names,
    horizon_days,
    night_flags,
    series_epoch_seconds,
    weekend_flags,
)
from core.params import FeatureParams, customer_window_features, terminal_window_features

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ONE_SECOND = dt.timedelta(seconds=1)
REBASE_ABOVE = 1 << 60
NUMPY_MIN_ROWS = 16  # batches from this size count their windows with numpy (fewer: a Python loop)
# a batch copies the series it touches side by side up to this length; a longer one (a card under a
# testing burst, a busy terminal) is searched where it lies, so no batch copies more than this per series
PACK_MAX_ROWS = 1024
SHIFT_LOOP_MAX = 16  # totals shifted in a Python loop up to this many (numpy's call costs more)
# rows past the horizon leave once the cutoff moved a week: each series is trimmed once a week (at most
# a week more of memory), not a row or two a day
PRUNE_STEP_S = 7 * DAY_S

# (transaction id, epoch seconds, customer id, terminal id, amount)
Row = tuple[str, int, int, int, float]
# what the state holds of a transaction: (epoch seconds, customer id, terminal id, amount units)
HeldRow = tuple[int, int, int, int]


def epoch_seconds(when: dt.datetime) -> int:
    """Whole seconds since the epoch of an aware datetime, floored as :mod:`core.features` does."""
    return (when - EPOCH) // ONE_SECOND


def shift_totals(totals: array[int], start: int, delta: int) -> None:
    """Add ``delta`` to ``totals[start:]`` in place: a few totals (a row a little late) in a loop, more
    through a numpy view of the array (no copy, no Python object per total)."""
    if not delta:
        return
    if len(totals) - start <= SHIFT_LOOP_MAX:
        for at in range(start, len(totals)):
            totals[at] += delta
    else:
        view = np.frombuffer(totals, dtype=np.int64)
        view[start:] += delta
        del view  # releases the buffer: the array can grow again


@dataclass(slots=True)
class _Series:
    """One customer's or terminal's transactions, sorted by time (ties in arrival order).

    Times and totals are int64 arrays (``array("q")``): appending is as cheap as a list's, and numpy
    reads them in place (:func:`count_windows`) or copies a short one in one ``tobytes``.

    ``cum`` holds running totals of the rows' values (amount units for a customer, known fraud labels
    for a terminal): the rows from ``lo`` to ``hi`` sum to ``cum[hi] - cum[lo]``, exactly, in O(1).
    Appending and dropping the oldest row, the usual changes, keep the totals valid as they are; a row
    arriving late, removed or relabelled shifts the totals after it in place, at memmove speed
    (:func:`shift_totals`), never in a Python loop over a long card's history.
    """

    times: array[int] = field(default_factory=lambda: array("q"))
    ids: list[str] = field(default_factory=list)
    cum: array[int] = field(default_factory=lambda: array("q", [0]))

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
        shift_totals(cum, at + 2, value)

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

    def trim(self, cutoff: int) -> list[str]:
        """Drop the rows at or before ``cutoff`` (the oldest: the totals after them stay valid); returns
        their ids."""
        drop = bisect_right(self.times, cutoff)
        dropped = self.ids[:drop]
        if drop:
            del self.times[:drop], self.ids[:drop], self.cum[:drop]
            if self.cum[0] > REBASE_ABOVE:  # totals only ever grow: keep them far from the int64 limit
                base = self.cum[0]
                self.cum = array("q", [total - base for total in self.cum])
        return dropped

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
        shift_totals(cum, at + 1, -value)

    def value(self, seconds: int, tid: str) -> int:
        """The value of the row ``tid`` at ``seconds`` (0 when the series no longer holds it)."""
        at = self.position(seconds, tid)
        return self.cum[at + 1] - self.cum[at] if at >= 0 else 0

    def set_value(self, seconds: int, tid: str, value: int) -> None:
        at = self.position(seconds, tid)
        if at < 0:
            return
        cum = self.cum
        shift_totals(cum, at + 1, value - (cum[at + 1] - cum[at]))


def count_windows(
    entities: Mapping[int, _Series], keys: Sequence[int], ends: np.ndarray, windows: Sequence[int]
) -> np.ndarray:
    """Per row, per window: how many rows of the row's series (``entities[key]``) lie in
    (end - window, end], and the exact sum of their values (int64, rows x 2 per window).

    The rows of series up to :data:`PACK_MAX_ROWS` long are counted together, in a copy of those series
    side by side (:func:`count_packed`); a longer series is searched where it lies, for all its rows at
    once (:func:`count_in_place`). So a batch copies at most that many rows per series it touches, and
    costs the same whatever a card's or a terminal's history holds.
    """
    segment_of: dict[int, int] = {}
    segment = np.array([segment_of.setdefault(key, len(segment_of)) for key in keys])
    series = [entities[key] for key in segment_of]
    short = np.array([len(s.times) <= PACK_MAX_ROWS for s in series])
    out = np.empty((len(keys), 2 * len(windows)), dtype=np.int64)
    rows = np.flatnonzero(short[segment])
    if len(rows):
        renumbered = (np.cumsum(short) - 1)[segment[rows]]  # the rows' series among the short ones
        out[rows] = count_packed(list(compress(series, short)), renumbered, ends[rows], windows)
    rows = np.flatnonzero(~short[segment])
    if len(rows):
        rows = rows[np.argsort(segment[rows], kind="stable")]
        for group in np.split(rows, np.flatnonzero(np.diff(segment[rows])) + 1):
            out[group] = count_in_place(series[segment[group[0]]], ends[group], windows)
    return out


def count_packed(
    series: Sequence[_Series], segment: np.ndarray, ends: np.ndarray, windows: Sequence[int]
) -> np.ndarray:
    """:func:`count_windows` for rows of short series (``segment``: each row's index in ``series``).

    The series are copied side by side into one array, each shifted by its own
    :data:`~core.features.SPAN`, so that one ``searchsorted`` finds every row's window bounds, as
    :func:`core.features.compute_features` does on a whole table.
    """
    times = np.frombuffer(b"".join([s.times.tobytes() for s in series]), dtype=np.int64)
    totals = np.frombuffer(b"".join([s.cum.tobytes() for s in series]), dtype=np.int64)
    lengths = np.array([len(s.times) for s in series], dtype=np.int64)
    first_time = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    first_total = first_time + np.arange(len(series))  # each series has one total more
    packed = times + np.repeat(np.arange(len(series), dtype=np.int64) * SPAN, lengths)
    end = segment * SPAN + ends
    row_time, row_total = first_time[segment], first_total[segment]
    hi = np.searchsorted(packed, end, side="right") - row_time
    top = totals[row_total + hi]
    out = []
    for window in windows:
        lo = np.searchsorted(packed, end - window, side="right") - row_time
        out += [hi - lo, top - totals[row_total + lo]]
    return np.stack(out, axis=1)


def count_in_place(series: _Series, ends: np.ndarray, windows: Sequence[int]) -> np.ndarray:
    """:func:`count_windows` for rows of one series, searched through numpy views of its arrays: binary
    searches and a gather per window, no copy of the series."""
    times = np.frombuffer(series.times, dtype=np.int64)
    totals = np.frombuffer(series.cum, dtype=np.int64)
    hi = np.searchsorted(times, ends, side="right")
    top = totals[hi]
    out = []
    for window in windows:
        lo = np.searchsorted(times, ends - window, side="right")
        out += [hi - lo, top - totals[lo]]
    return np.stack(out, axis=1)  # the views go with this frame: the arrays can grow again


class FeatureStateError(Exception):
    """The feature state cannot be read or written now (its store is unreachable or not loaded yet):
    nothing was applied, the caller may retry."""


class FeatureState(Protocol):
    """What the scoring path asks of an online feature state: :class:`OnlineFeatures` in the API process
    (solo), :class:`core.online_redis.RedisFeatures` shared by replicas (team). Both answer with the same
    :class:`FeatureLayout` arithmetic, so they give the same features to the last bit."""

    names: list[str]
    remote: bool  # calls wait on the network: callers keep them off an event loop

    def held(self, ids: Iterable[str]) -> dict[str, HeldRow]: ...
    def labels_of(self, ids: Iterable[str]) -> dict[str, int]: ...
    def add_transactions(self, rows: Sequence[Row]) -> np.ndarray: ...
    def features_of(self, rows: Sequence[Row]) -> np.ndarray: ...
    def add_labels(self, labels: Mapping[str, int]) -> int: ...
    def unavailable_reason(self) -> str | None: ...


class FeatureLayout:
    """The windows of the features and the arithmetic turning a row's window counts into its feature
    row: the one implementation every online state uses (:mod:`core.features` computes the same numbers
    for a whole table)."""

    def __init__(self, params: FeatureParams, delay_days: int) -> None:
        self.names = feature_names(params)
        # Features are written to their columns by name, looked up once here: the window counts come in
        # the order of the windows' parameters (customer windows, then terminal ones), whatever the
        # model's column order is.
        column = {name: at for at, name in enumerate(self.names)}
        self._flag_columns = (column["tx_amount"], column["tx_during_weekend"], column["tx_during_night"])
        # per window, as counted: (count column, ratio column, the ratio's numerator scale)
        self._window_columns = [
            (column[count], column[average], AMOUNT_SCALE)
            for count, average in map(customer_window_features, params.customer_windows_days)
        ] + [
            (column[count], column[risk], 1)
            for count, risk in map(terminal_window_features, params.terminal_windows_days)
        ]
        self._customer_windows = [w * DAY_S for w in params.customer_windows_days]
        self._terminal_windows = [w * DAY_S for w in params.terminal_windows_days]
        self._delay_s = delay_days * DAY_S
        self._night_end_hour = params.night_end_hour
        self._horizon_s = horizon_days(params, delay_days) * DAY_S

    def warm_rows(self, transactions: pd.DataFrame) -> tuple[list[Row], int | None]:
        """The rows of ``transactions`` a window can still reach (after the newest one's time less the
        horizon), time-ordered (ties in table order), and that cutoff (None for no transactions)."""
        seconds = series_epoch_seconds(pd.to_datetime(transactions["tx_datetime"], utc=True))
        if not len(seconds):
            return [], None
        cutoff = int(seconds.max()) - self._horizon_s
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
        return list(rows), cutoff

    def features(self, rows: Sequence[Row], counts: np.ndarray) -> np.ndarray:
        """The features (float32, rows x :attr:`names`) of ``rows`` from their window counts (int64, rows x
        2 per window: count and exact sum, customer windows then terminal ones).

        A batch of :data:`NUMPY_MIN_ROWS` rows or more is computed with the same numpy operations as
        :func:`core.features.compute_features`; a smaller one (a single transaction) in plain Python,
        where numpy's per-call cost would dominate. Both give the offline features to the last bit.
        """
        if len(rows) < NUMPY_MIN_ROWS:
            values = [self._row_features(row, part) for row, part in zip(rows, counts.tolist(), strict=True)]
            return np.array(values, dtype=np.float64).reshape(len(rows), len(self.names)).astype(np.float32)
        _, seconds_t, _, _, amounts_t = zip(*rows, strict=True)
        seconds = np.array(seconds_t, dtype=np.int64)
        amounts = np.array(amounts_t, dtype=np.float64)
        out = np.empty((len(rows), len(self.names)), dtype=np.float64)
        amount_at, weekend_at, night_at = self._flag_columns
        out[:, amount_at] = amounts
        out[:, weekend_at] = weekend_flags(seconds)
        out[:, night_at] = night_flags(seconds, self._night_end_hour)
        totals = counts.astype(np.float64)
        for k, (count_at, ratio_at, scale) in enumerate(self._window_columns):
            count = totals[:, 2 * k]
            total = totals[:, 2 * k + 1] / scale  # a customer's amount sum back in currency units (x / 1: x)
            out[:, count_at] = count
            out[:, ratio_at] = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        return out.astype(np.float32)

    def _row_features(self, row: Row, counts: list[int]) -> list[float]:
        """One row's features, each in its :attr:`names` column (``counts``: the row's window counts);
        the arithmetic of :func:`core.features.compute_features`."""
        _, seconds, _, _, amount = row
        day, second_of_day = divmod(seconds, DAY_S)
        values = [0.0] * len(self.names)
        amount_at, weekend_at, night_at = self._flag_columns
        values[amount_at] = amount
        values[weekend_at] = 1.0 if (day + EPOCH_WEEKDAY) % 7 >= 5 else 0.0
        values[night_at] = 1.0 if second_of_day // 3600 < self._night_end_hour else 0.0
        for k, (count_at, ratio_at, scale) in enumerate(self._window_columns):
            count, total = counts[2 * k], counts[2 * k + 1]
            values[count_at] = float(count)
            values[ratio_at] = total / scale / count if count else 0.0
        return values


class OnlineFeatures(FeatureLayout):
    """Bounded per-customer and per-terminal history plus known labels in this process; thread-safe."""

    remote = False  # answers from memory: fine on the event loop

    def __init__(self, params: FeatureParams, delay_days: int) -> None:
        super().__init__(params, delay_days)
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._customers: dict[int, _Series] = {}
        self._terminals: dict[int, _Series] = {}
        self._where: dict[str, tuple[int, int, int]] = {}  # id -> (seconds, customer, terminal)
        self._labels: dict[str, int] = {}
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
        ordered, cutoff = self.warm_rows(transactions)
        with self._lock:
            self._clear()
            self._labels = {tid: int(v) for tid, v in labels.items()}
            self._insert(ordered, amount_units(np.array([r[4] for r in ordered])).tolist())
            self._labels = {tid: v for tid, v in self._labels.items() if tid in self._where}
            self._pruned_to = cutoff

    def add_transactions(self, rows: Sequence[Row]) -> np.ndarray:
        """Add ``rows`` to the history and return their features (float32, rows x :attr:`names`).

        A batch of :data:`NUMPY_MIN_ROWS` rows or more counts its windows with numpy, a smaller one (a
        single transaction) in plain Python (:meth:`FeatureLayout.features` turns the counts into
        features the same way).
        """
        if not rows:
            return np.empty((0, len(self.names)), dtype=np.float32)
        with self._lock:
            if len(rows) < NUMPY_MIN_ROWS:
                self._insert(rows, [round(row[4] * AMOUNT_SCALE) for row in rows])
                counts = np.array(self._row_window_counts(rows), dtype=np.int64)
            else:
                self._insert(rows, amount_units(np.array([row[4] for row in rows])).tolist())
                counts = self._window_counts_numpy(rows, np.array([row[1] for row in rows], dtype=np.int64))
            self._prune()
        return self.features(rows, counts)

    def unavailable_reason(self) -> str | None:
        """None: a state in this process is always there."""
        return None

    def held(self, ids: Iterable[str]) -> dict[str, HeldRow]:
        """What the state holds of those of ``ids`` it has (a dictionary lookup for the others)."""
        with self._lock:
            where = self._where
            found = [(tid, where[tid]) for tid in ids if tid in where]
            return {
                tid: (seconds, customer, terminal, self._customers[customer].value(seconds, tid))
                for tid, (seconds, customer, terminal) in found
            }

    def labels_of(self, ids: Iterable[str]) -> dict[str, int]:
        """The known labels of those of ``ids`` the state holds."""
        with self._lock:
            labels = self._labels
            return {tid: labels[tid] for tid in ids if tid in labels}

    def features_of(self, rows: Sequence[Row]) -> np.ndarray:
        """The features of ``rows`` the state holds already (ingested, never scored), as
        :meth:`add_transactions` gave them: the state is left as it is."""
        with self._lock:
            counts = np.array(self._row_window_counts(rows), dtype=np.int64).reshape(len(rows), -1)
        values = [self._row_features(row, part) for row, part in zip(rows, counts.tolist(), strict=True)]
        return np.array(values, dtype=np.float64).reshape(len(rows), len(self.names)).astype(np.float32)

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

    def _insert(self, rows: Sequence[Row], units: Sequence[int]) -> None:
        """Add ``rows`` (``units``: their amounts in :data:`~core.features.AMOUNT_SCALE` units)."""
        customers, terminals, where, labels = self._customers, self._terminals, self._where, self._labels
        for (tid, seconds, customer, terminal, _), value in zip(rows, units, strict=True):
            if tid in where:
                self._forget(tid)
            series = customers.get(customer)
            if series is None:
                series = customers[customer] = _Series()
            series.insert(seconds, tid, value)
            series = terminals.get(terminal)
            if series is None:
                series = terminals[terminal] = _Series()
            series.insert(seconds, tid, labels.get(tid, 0))
            where[tid] = (seconds, customer, terminal)
        if rows:
            newest = max(row[1] for row in rows)
            if self._newest is None or newest > self._newest:
                self._newest = newest

    def _row_window_counts(self, rows: Sequence[Row]) -> list[list[int]]:
        """Per row, per window (customer windows, then terminal ones, as in the parameters): the count of rows and the exact integer sum of
        their values (amount units for a customer window, known frauds for a terminal one)."""
        customers, terminals = self._customers, self._terminals
        customer_windows, terminal_windows = self._customer_windows, self._terminal_windows
        delay = self._delay_s
        result = []
        for _, seconds, customer, terminal, _ in rows:
            out: list[int] = []
            series = customers[customer]
            times, cum = series.times, series.cum
            hi = bisect_right(times, seconds)
            top = cum[hi]
            for window in customer_windows:
                lo = bisect_right(times, seconds - window, 0, hi)
                out += (hi - lo, top - cum[lo])
            series = terminals[terminal]
            times, cum = series.times, series.cum
            end = seconds - delay
            hi = bisect_right(times, end)
            top = cum[hi]
            for window in terminal_windows:
                lo = bisect_right(times, end - window, 0, hi)
                out += (hi - lo, top - cum[lo])
            result.append(out)
        return result

    def _window_counts_numpy(self, rows: Sequence[Row], seconds: np.ndarray) -> np.ndarray:
        """:meth:`_row_window_counts` for a batch, as an int64 array (rows x 2 per window), with numpy
        (:func:`count_windows`, customer windows then terminal ones)."""
        _, _, customers, terminals, _ = zip(*rows, strict=True)
        return np.concatenate(
            [
                count_windows(self._customers, customers, seconds, self._customer_windows),
                count_windows(self._terminals, terminals, seconds - self._delay_s, self._terminal_windows),
            ],
            axis=1,
        )

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
        """Forget rows no future window reaches (behind the newest transaction by the horizon).

        Once the cutoff moved :data:`PRUNE_STEP_S`, every series drops its rows at or before it (one
        binary search each) and their ids and labels are forgotten. A row past the horizon is never
        inside a window, so pruning late changes no feature.
        """
        if self._newest is None:
            return
        cutoff = self._newest - self._horizon_s
        if self._pruned_to is not None and cutoff < self._pruned_to + PRUNE_STEP_S:
            return
        self._pruned_to = cutoff
        where, labels = self._where, self._labels
        for entities in (self._customers, self._terminals):
            for key in [key for key, series in entities.items() if series.times[0] <= cutoff]:
                series = entities[key]
                for tid in series.trim(cutoff):
                    if where.pop(tid, None) is not None:
                        labels.pop(tid, None)
                if not series.times:
                    del entities[key]
