"""The service's online feature state (:class:`core.online.OnlineFeatures`), warm-started at start-up.

The state is warm-started from ``data/validated``: the transactions any window can still reach and
their known labels. In team mode this state would live in a shared store (Redis); here it lives in the
API process.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from core.online import OnlineFeatures
from core.params import Params
from core.schemas import TRANSACTION_COLUMNS
from core.settings import Settings

logger = logging.getLogger(__name__)


def read_labels(path: Path) -> dict[str, int]:
    """Known labels from a labels parquet file (``transaction_id`` -> ``tx_fraud``)."""
    frame = pd.read_parquet(path, columns=["transaction_id", "tx_fraud"])
    return dict(zip(frame["transaction_id"].astype(str), frame["tx_fraud"].astype(int), strict=True))


def load_state(settings: Settings, params: Params) -> OnlineFeatures:
    """A state warm-started from ``data/validated`` when the training data is there, else empty."""
    state = OnlineFeatures(params.features, params.data.label_delay_days)
    folder = settings.validated_dir
    tx_file, labels_file = folder / "transactions.parquet", folder / "labels.parquet"
    if not tx_file.exists():
        logger.info("no %s: the feature state starts empty", tx_file)
        return state
    labels = read_labels(labels_file) if labels_file.exists() else {}
    state.warm_start(pd.read_parquet(tx_file, columns=TRANSACTION_COLUMNS), labels)
    logger.info("feature state warm-started: %d transactions, %d labels", state.rows, state.known_labels)
    return state
