"""DVC stage ``features``: the validated store -> the feature table the model trains on.

Labels join the transactions; a transaction whose label is not known yet counts as genuine in the
terminal-risk windows (those windows end a label delay before the transaction, so this only matters
at the newest edge). Run by ``dvc repro`` as ``python -m pipelines.features``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from core.features import compute_features
from core.params import Params, load_params
from core.settings import get_settings

log = logging.getLogger(__name__)
FEATURES_FILE = "features.parquet"


def build_feature_table(transactions: pd.DataFrame, labels: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Transactions with their label (NaN when unknown) and the model's features."""
    frame = transactions.merge(labels[["transaction_id", "tx_fraud"]], on="transaction_id", how="left")
    frame = frame.sort_values("tx_datetime", kind="stable").reset_index(drop=True)
    known = frame["tx_fraud"].fillna(0).to_numpy(dtype=np.float64)
    features = compute_features(frame, known, params.features, params.data.label_delay_days)
    return pd.concat([frame, features.drop(columns=["tx_amount"])], axis=1)


def read_feature_table(data_dir: Path) -> pd.DataFrame:
    """The stage's output (run ``dvc repro`` first)."""
    path = data_dir / "features" / FEATURES_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: ingest data, then run `dvc repro` (or `fraudops train`)")
    return pd.read_parquet(path)


def main() -> None:
    """Entry point of the DVC stage."""
    settings = get_settings()
    params = load_params(settings.project_dir / "params.yaml")
    validated = settings.validated_dir
    table = build_feature_table(
        pd.read_parquet(validated / "transactions.parquet"),
        pd.read_parquet(validated / "labels.parquet"),
        params,
    )
    out = settings.data_dir / "features"
    out.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out / FEATURES_FILE, index=False)
    log.info("features: %s rows x %d columns", f"{len(table):,}", len(table.columns))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
