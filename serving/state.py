"""The service's online feature state (:class:`core.online.OnlineFeatures`), rebuilt at start-up.

A restart must not forget anything scoring used: the state is rebuilt from ``data/validated`` (the
ingested transactions and their labels) plus the tail of the prediction and feedback logs (the
transactions scored and the labels received since, within the reach of any window). Scores computed
after a restart therefore equal the offline features of everything the service had seen, as they would
without the restart. The state lives in the API process, unless ``FRAUDOPS_REDIS_URL`` puts it in
Redis, shared by the replicas (:mod:`serving.shared_state`) and filled by the same :func:`read_history`.

A transaction both ingested and logged is the same transaction (a different one under a used id is
refused on both paths), so the two sources are merged by id. Labels received through the API for
transactions that were ingested but never scored are not in the logs' window and are not restored.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd

from core.features import horizon_days
from core.online import OnlineFeatures
from core.params import Params
from core.predlog import PredictionLog, open_prediction_log
from core.schemas import TRANSACTION_COLUMNS
from core.settings import Settings

logger = logging.getLogger(__name__)


def read_labels(path: Path) -> dict[str, int]:
    """Known labels from a labels parquet file (``transaction_id`` -> ``tx_fraud``)."""
    frame = pd.read_parquet(path, columns=["transaction_id", "tx_fraud"])
    return dict(zip(frame["transaction_id"].astype(str), frame["tx_fraud"].astype(int), strict=True))


def log_tail_start(validated: pd.DataFrame, reach_days: int) -> dt.date | None:
    """The first transaction day of the logs any window can still need: ``reach_days`` before the
    newest validated transaction's day (None: no validated data, the whole log)."""
    if validated.empty:
        return None
    newest = pd.to_datetime(validated["tx_datetime"], utc=True).max()
    return newest.date() - dt.timedelta(days=reach_days + 1)


def read_history(
    settings: Settings, params: Params, log: PredictionLog | None = None
) -> tuple[pd.DataFrame, dict[str, int], dict[str, int]]:
    """What a feature state is rebuilt from: ``data/validated`` plus the logs' tail (``log``: the
    settings' log), merged by id; their known labels; and how many rows came from each source.

    The logs are only read here: a missing log is not created.
    """
    folder = settings.validated_dir
    tx_file, labels_file = folder / "transactions.parquet", folder / "labels.parquet"
    validated = (
        pd.read_parquet(tx_file, columns=TRANSACTION_COLUMNS)
        if tx_file.exists()
        else pd.DataFrame(columns=TRANSACTION_COLUMNS)
    )
    labels = read_labels(labels_file) if labels_file.exists() else {}
    log = log or open_prediction_log(settings)
    start = log_tail_start(validated, horizon_days(params.features, params.data.label_delay_days))
    scored = log.read_predictions(start=start, columns=TRANSACTION_COLUMNS)
    received = log.read_feedback(start=start) if not scored.empty else pd.DataFrame()
    tail = scored[~scored["transaction_id"].isin(validated["transaction_id"])] if not scored.empty else scored
    frames = [frame for frame in (validated, tail) if not frame.empty]
    transactions = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TRANSACTION_COLUMNS)
    )
    if not received.empty:
        labels.update(
            zip(received["transaction_id"].astype(str), received["tx_fraud"].astype(int), strict=True)
        )
    return transactions, labels, {"validated": len(validated), "logged": len(tail)}


def load_state(settings: Settings, params: Params, log: PredictionLog | None = None) -> OnlineFeatures:
    """A state in this process rebuilt by :func:`read_history` (empty when there is nothing to read)."""
    state = OnlineFeatures(params.features, params.data.label_delay_days)
    transactions, labels, counts = read_history(settings, params, log)
    if transactions.empty:
        logger.info("no validated data and no logged predictions: the feature state starts empty")
        return state
    state.warm_start(transactions, labels)
    logger.info(
        "feature state rebuilt: %d transactions held (%d validated, %d from the prediction log), %d labels",
        *(state.rows, counts["validated"], counts["logged"], state.known_labels),
    )
    return state
