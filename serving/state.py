"""Online feature state: recent transactions and their known labels, fed to ``core.features``.

Serving computes features with the very function training uses: for a batch it takes the history rows
of the batch's customers and terminals, appends the batch and calls :func:`core.features.compute_features`.
The history keeps only what any future window can reach (the longest customer window, or the longest
terminal window plus the label delay, before the newest transaction seen). In team mode this state
would live in a shared store (Redis); here it lives in the API process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from core.features import compute_features, horizon_days
from core.params import FeatureParams, Params
from core.schemas import TRANSACTION_COLUMNS
from core.settings import Settings

logger = logging.getLogger(__name__)

# Rows older than the horizon are outside every window, so keeping them a little longer changes nothing.
PRUNE_STEP = pd.Timedelta(hours=1)


def empty_transactions() -> pd.DataFrame:
    """A frame with the transaction columns and the dtypes the feature code expects."""
    return coerce_transactions(pd.DataFrame({name: [] for name in TRANSACTION_COLUMNS}))


def coerce_transactions(frame: pd.DataFrame) -> pd.DataFrame:
    """Transaction columns only, UTC microsecond timestamps, int64 ids, float64 amounts."""
    return pd.DataFrame(
        {
            "transaction_id": frame["transaction_id"].astype(str),
            "tx_datetime": pd.to_datetime(frame["tx_datetime"], utc=True).dt.as_unit("us"),
            "customer_id": frame["customer_id"].astype(np.int64),
            "terminal_id": frame["terminal_id"].astype(np.int64),
            "tx_amount": frame["tx_amount"].astype(np.float64),
        }
    )


class FeatureState:
    """Bounded transaction history plus known fraud labels; every method is thread-safe."""

    def __init__(self, params: FeatureParams, delay_days: int) -> None:
        self._params = params
        self._delay_days = delay_days
        self._horizon = pd.Timedelta(days=horizon_days(params, delay_days))
        self._lock = threading.Lock()
        self._pruned_to: pd.Timestamp | None = None
        self._history = empty_transactions()
        self._ids: set[str] = set()
        self._labels: dict[str, int] = {}

    @property
    def rows(self) -> int:
        """Transactions held."""
        return len(self._history)

    @property
    def known_labels(self) -> int:
        """Labels held (only for transactions in the history)."""
        return len(self._labels)

    def warm_start(self, transactions: pd.DataFrame, labels: Mapping[str, int]) -> None:
        """Replace the state with ``transactions`` (pruned to the horizon) and their known labels."""
        history = coerce_transactions(transactions).drop_duplicates("transaction_id", keep="last")
        with self._lock:
            self._history = history.reset_index(drop=True)
            self._ids = set(self._history["transaction_id"])
            self._labels = {tid: int(v) for tid, v in labels.items() if tid in self._ids}
            self._pruned_to = None
            if not history.empty:
                self._prune(history["tx_datetime"].max())

    def record_batch(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Features of ``batch`` rows (same order, all feature columns), then add the batch to the history.

        A transaction id seen before replaces its earlier row instead of counting twice.
        """
        batch = coerce_transactions(batch).reset_index(drop=True)
        with self._lock:
            self._forget(batch["transaction_id"])
            context = self._history_of(batch)
            frame = pd.concat([context, batch], ignore_index=True)
            fraud = np.array([self._labels.get(tid, 0) for tid in frame["transaction_id"]], dtype=np.float64)
            features = compute_features(frame, fraud, self._params, self._delay_days)
            self._history = pd.concat([self._history, batch], ignore_index=True)
            self._ids.update(batch["transaction_id"])
            self._prune(batch["tx_datetime"].max())
        return features.iloc[len(context) :].reset_index(drop=True)

    def add_labels(self, labels: Mapping[str, int]) -> int:
        """Record fraud labels; returns how many concern transactions in the history.

        Labels of transactions outside the history cannot change any feature, so they are not kept.
        """
        with self._lock:
            known = {tid: int(v) for tid, v in labels.items() if tid in self._ids}
            self._labels.update(known)
        return len(known)

    def _history_of(self, batch: pd.DataFrame) -> pd.DataFrame:
        customers = self._history["customer_id"].isin(batch["customer_id"].unique())
        terminals = self._history["terminal_id"].isin(batch["terminal_id"].unique())
        return self._history[customers | terminals]

    def _forget(self, ids: pd.Series) -> None:
        if self._ids.isdisjoint(ids):
            return
        self._history = self._history[~self._history["transaction_id"].isin(ids)].reset_index(drop=True)
        self._ids.difference_update(ids)

    def _prune(self, newest: pd.Timestamp) -> None:
        """Drop rows no future window reaches, once the cutoff moved a step (pruning scans every row)."""
        cutoff = newest - self._horizon
        if self._pruned_to is not None and cutoff < self._pruned_to + PRUNE_STEP:
            return
        self._pruned_to = cutoff
        old = self._history["tx_datetime"] <= cutoff
        if not old.any():
            return
        dropped = set(self._history.loc[old, "transaction_id"])
        self._history = self._history[~old].reset_index(drop=True)
        self._ids.difference_update(dropped)
        for tid in dropped.intersection(self._labels):
            del self._labels[tid]


def read_labels(path: Path) -> dict[str, int]:
    """Known labels from a labels parquet file (``transaction_id`` -> ``tx_fraud``)."""
    frame = pd.read_parquet(path, columns=["transaction_id", "tx_fraud"])
    return dict(zip(frame["transaction_id"].astype(str), frame["tx_fraud"].astype(int), strict=True))


def load_state(settings: Settings, params: Params) -> FeatureState:
    """A state warm-started from ``data/validated`` when the training data is there, else empty."""
    state = FeatureState(params.features, params.data.label_delay_days)
    folder = settings.validated_dir
    tx_file, labels_file = folder / "transactions.parquet", folder / "labels.parquet"
    if not tx_file.exists():
        logger.info("no %s: the feature state starts empty", tx_file)
        return state
    labels = read_labels(labels_file) if labels_file.exists() else {}
    state.warm_start(pd.read_parquet(tx_file, columns=TRANSACTION_COLUMNS), labels)
    logger.info("feature state warm-started: %d transactions, %d labels", state.rows, state.known_labels)
    return state
