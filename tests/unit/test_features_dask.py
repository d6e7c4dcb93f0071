"""The Dask feature path gives exactly the single-process feature table, histories spanning its partitions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.features import compute_features, feature_names
from core.params import Params
from core.settings import Settings
from core.simulator import SimulationConfig, write_simulation
from pipelines.features import build_feature_table, world_files, write_features
from pipelines.features_dask import LABEL, concat_parts, feature_frame, write_feature_table

# 14 day files: each customer and terminal has rows in several of them, so every window's look-back
# crosses the files' (the input partitions') day boundaries; a wide radius makes customers share
# terminals, so a customer partition does not hold whole terminal histories
SIM = SimulationConfig(customers=40, terminals=30, days=14, seed=3, start_date=dt.date(2026, 1, 1), radius=30)
UNLABELLED_DAYS = 3  # the newest days' labels are not known yet, as in the features stage
PIECE_ROWS = 25  # a couple of days a partition: several partitions, each cut at a day boundary


def read_all(files: list[Path]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_dask_features_equal_the_single_process_table(
    tmp_path: Path, params: Params, dask_client: Any
) -> None:
    write_simulation(tmp_path / "world", SIM)
    tx_files, label_files = world_files(tmp_path / "world")
    label_files = label_files[:-UNLABELLED_DAYS]
    for n, path in enumerate(tx_files):  # rows of a day in any order, as another source may send them
        day = pd.read_parquet(path)
        day.sample(frac=1, random_state=n).to_parquet(path, index=False)
    tx = read_all(tx_files)
    days_per_customer = tx.groupby("customer_id")["tx_datetime"].agg(lambda s: s.dt.date.nunique())
    days_per_terminal = tx.groupby("terminal_id")["tx_datetime"].agg(lambda s: s.dt.date.nunique())
    assert days_per_customer.min() >= 2 and days_per_terminal.min() >= 2  # histories span the files
    assert tx.groupby("terminal_id")["customer_id"].nunique().min() >= 2  # terminals shared by cards

    single = build_feature_table(tx, read_all(label_files), params)
    out = tmp_path / "features" / "features.parquet"
    assert feature_frame(tx_files, label_files, params, PIECE_ROWS).npartitions >= 5
    rows = write_feature_table(dask_client, tx_files, label_files, params, out, PIECE_ROWS)
    got = pd.read_parquet(out)

    assert rows == len(single) == len(tx)
    assert got["transaction_id"].tolist() == single["transaction_id"].tolist()  # same rows, same order
    for name in feature_names(params.features)[1:]:  # tx_amount stays the table's own float64 column
        assert got[name].dtype == np.float32
        assert np.array_equal(got[name].to_numpy(), single[name].to_numpy()), name
    assert got[LABEL].isna().sum() == single[LABEL].isna().sum() > 0  # unknown labels stay unknown
    pd.testing.assert_frame_equal(got, single)  # and every other column, with its dtype
    assert list(tmp_path.joinpath("features").iterdir()) == [out]  # the workers' parts are gone

    # a naive split (each day file on its own) would cut the look-backs: the equality above is not free
    alone = pd.read_parquet(tx_files[-1])
    naive = compute_features(alone, np.zeros(len(alone)), params.features, params.data.label_delay_days)
    whole = single.set_index("transaction_id").loc[alone["transaction_id"], "customer_nb_tx_30d"]
    assert (naive["customer_nb_tx_30d"].to_numpy() < whole.to_numpy()).any()


def test_files_out_of_time_order_are_refused(tmp_path: Path, params: Params, dask_client: Any) -> None:
    write_simulation(tmp_path / "world", SIM)
    tx_files, label_files = world_files(tmp_path / "world")
    with pytest.raises(ValueError, match="give the files in time order"):
        write_feature_table(
            dask_client, tx_files[::-1], label_files, params, tmp_path / "f.parquet", PIECE_ROWS
        )


def test_labels_are_integers_once_all_are_known(tmp_path: Path) -> None:
    parts = []
    for n, labels in enumerate(([0.0, 1.0], [0.0, 0.0])):
        parts.append(tmp_path / f"part-{n}.parquet")
        pq.write_table(pa.table({"transaction_id": [f"a{n}", f"b{n}"], LABEL: labels}), parts[-1])
    assert concat_parts(parts, tmp_path / "known.parquet") == 4
    known = pd.read_parquet(tmp_path / "known.parquet")
    assert known[LABEL].dtype == np.int64 and known[LABEL].tolist() == [0, 1, 0, 0]

    pq.write_table(pa.table({"transaction_id": ["c"], LABEL: pa.array([None], pa.float64())}), parts[1])
    concat_parts(parts, tmp_path / "unknown.parquet")
    unknown = pd.read_parquet(tmp_path / "unknown.parquet")
    assert unknown[LABEL].dtype == np.float64 and unknown[LABEL].isna().tolist() == [False, False, True]


def test_the_engine_setting_sends_the_features_to_the_named_scheduler(
    tmp_path: Path, params: Params, dask_client: Any
) -> None:
    write_simulation(tmp_path / "world", SIM)
    tx_files, label_files = (files[:8] for files in world_files(tmp_path / "world"))
    single = Settings(_env_file=None)  # type: ignore[call-arg]
    on_dask = single.model_copy(
        update={"feature_engine": "dask", "dask_scheduler": dask_client.scheduler.address}
    )
    scheduler = dask_client.cluster.scheduler
    before = scheduler.transition_counter
    write_features(tx_files, label_files, params, tmp_path / "dask.parquet", on_dask)
    assert scheduler.transition_counter > before  # the session's cluster did the work
    write_features(tx_files, label_files, params, tmp_path / "single.parquet", single)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "dask.parquet"), pd.read_parquet(tmp_path / "single.parquet")
    )
