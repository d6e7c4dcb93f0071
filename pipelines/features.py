"""DVC stage ``features``: the validated store -> the feature table the model trains on.

Labels join the transactions; a transaction whose label is not known yet counts as genuine in the
terminal-risk windows (those windows end a label delay before the transaction, so this only matters
at the newest edge). Run by ``dvc repro`` as ``python -m pipelines.features``.

``FRAUDOPS_FEATURE_ENGINE=dask`` computes the same table on a Dask cluster
(:mod:`pipelines.features_dask`), for data one process cannot hold.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from core.features import compute_features
from core.params import Params, load_params
from core.settings import Settings, get_settings

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


def world_files(world: Path) -> tuple[list[Path], list[Path]]:
    """The day files of a folder in the ``fraudops simulate`` layout: transactions and labels, by day."""
    return sorted((world / "transactions").glob("*.parquet")), sorted((world / "labels").glob("*.parquet"))


def write_features(
    tx_paths: Sequence[Path], label_paths: Sequence[Path], params: Params, out: Path, settings: Settings
) -> int:
    """Compute the feature table of these files with the configured engine, write it to ``out``; its rows.

    The files must be in time order (day files, or the validated store), which the Dask engine checks.
    """
    if settings.feature_engine == "dask":
        from pipelines.cluster import dask_client
        from pipelines.features_dask import write_feature_table

        with dask_client(settings) as client:
            return write_feature_table(client, tx_paths, label_paths, params, out)
    table = build_feature_table(read_days(tx_paths), read_days(label_paths), params)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)
    return len(table)


def read_days(paths: Sequence[Path]) -> pd.DataFrame:
    """The files' rows, one after the other."""
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def main() -> None:
    """Entry point of the DVC stage."""
    settings = get_settings()
    params = load_params(settings.project_dir / "params.yaml")
    validated = settings.validated_dir
    out = settings.data_dir / "features" / FEATURES_FILE
    rows = write_features(
        [validated / "transactions.parquet"], [validated / "labels.parquet"], params, out, settings
    )
    log.info("features (%s engine): %s rows", settings.feature_engine, f"{rows:,}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
