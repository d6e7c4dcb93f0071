"""The feature table past one process: :func:`core.features.compute_features` on Dask partitions.

A customer window needs the card's whole history, a terminal window the terminal's, with its labels.
So the transactions (labels joined) are shuffled once by customer and once by terminal: each
partition then holds every row of its keys, and ``compute_features`` is exact on it. The customer
columns (and the transaction's own) come from the first partitioning, the terminal columns from the
second; both go back to the input's own partitions by row number and are put in the single-process
order there. No feature logic lives here: every number comes from ``compute_features``.

Input: Parquet files, read a few row groups a task (the day files of ``fraudops simulate``, or the
validated store), so no process holds all the rows. The files must be in time order (no row group
holds a transaction older than one of the row group before it), as day files and the validated store
are: the single process sorts by time, ties in file order, which each output partition then repeats
on its own rows. With an existing scheduler, its workers must reach the files (the same machine, or a
shared filesystem).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.features import compute_features
from core.params import (
    TRANSACTION_FEATURES,
    FeatureParams,
    Params,
    customer_window_features,
    feature_names,
    terminal_window_features,
)
from core.schemas import TRANSACTION_COLUMNS

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

log = logging.getLogger(__name__)

ROW = "_row"  # a row's place in the input: piece number * 2**32 + row within the piece
ROW_BITS = 32  # a Parquet row group holds far fewer than 2**32 rows
TIME, LABEL = "tx_datetime", "tx_fraud"


PIECE_ROWS = 500_000  # rows a task reads and a partition holds at most: few tasks, each under a GB
# what a worker needs beside a task's rows: its own process (Python, pandas, Arrow, Dask: 173 MiB
# measured) and the shuffle's buffers, which pipelines.cluster bounds by the worker's limit
WORKER_BASE_BYTES = 200 * 1024**2
TASK_BYTES_PER_ROW = 800  # a partition's features at their peak: 560-770 bytes a row measured
WORKER_BUDGET = 0.6  # of a worker's limit: Dask starts spilling at 0.6 and pauses the worker at 0.8
MIN_PIECE_ROWS = 50_000  # below this the tasks' fixed costs dominate: a larger worker is the answer


@dataclass(frozen=True)
class RowGroup:
    """One row group of one input file, with its size and time range from the file's footer."""

    path: str
    index: int
    rows: int
    first: Any  # oldest and newest transaction time (None when the file has no statistics)
    last: Any


@dataclass(frozen=True)
class Piece:
    """Consecutive row groups that one task reads: one input partition."""

    groups: tuple[RowGroup, ...]
    number: int  # its place in the input order


def list_row_groups(paths: Sequence[Path], time_column: str | None = None) -> list[RowGroup]:
    """Every row group of ``paths``, in order, with its time range when ``time_column`` is given."""
    groups: list[RowGroup] = []
    for path in paths:
        meta = pq.ParquetFile(path).metadata  # the footer only: no rows are read here
        column = meta.schema.names.index(time_column) if time_column else None
        for index in range(meta.num_row_groups):
            group = meta.row_group(index)
            stats = group.column(column).statistics if column is not None else None
            first, last = (stats.min, stats.max) if stats is not None and stats.has_min_max else (None, None)
            groups.append(RowGroup(str(path), index, group.num_rows, first, last))
    return groups


def make_pieces(groups: Sequence[RowGroup], rows: int) -> list[Piece]:
    """Consecutive row groups gathered up to about ``rows`` rows a piece (a row group is never split).

    Each task and each shuffle partition has a fixed cost: 183 day files as 183 partitions took 179 s
    against the single process's 7 s at a quarter of book scale (benchmarks/growth_dask.py).
    """
    pieces: list[Piece] = []
    batch: list[RowGroup] = []
    for group in groups:
        if batch and sum(g.rows for g in batch) + group.rows > rows:
            pieces.append(Piece(tuple(batch), len(pieces)))
            batch = []
        batch.append(group)
    if batch:
        pieces.append(Piece(tuple(batch), len(pieces)))
    return pieces


def check_time_order(groups: Sequence[RowGroup]) -> None:
    """Refuse input whose row groups overlap in time: the output order would not be the single process's."""
    newest = None
    for group in groups:
        if group.first is None:
            raise ValueError(f"{group.path}: row group {group.index} has no time statistics")
        if newest is not None and group.first < newest:
            raise ValueError(
                f"{group.path}: row group {group.index} starts at {group.first}, before the previous "
                f"one ends ({newest}): give the files in time order (day files, or the validated store)"
            )
        newest = group.last


def read_piece(piece: Piece, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of a piece's row groups, one after the other."""
    tables = [pq.ParquetFile(g.path).read_row_group(g.index, columns=columns) for g in piece.groups]
    return pa.concat_tables(tables).to_pandas()


def read_transactions(piece: Piece) -> pd.DataFrame:
    """A piece of transactions (the contract's columns only), each row numbered by its place in the input."""
    frame = read_piece(piece, list(TRANSACTION_COLUMNS))
    frame[ROW] = (piece.number << ROW_BITS) + np.arange(len(frame), dtype=np.int64)
    return frame


def read_labels(piece: Piece) -> pd.DataFrame:
    """A piece of labels: the id and the fraud flag, as float (NaN once joined: not known yet)."""
    frame = read_piece(piece, ["transaction_id", LABEL])
    return frame.assign(**{LABEL: frame[LABEL].astype(np.float64)})


def customer_columns(params: FeatureParams) -> list[str]:
    """What the customer partitioning gives: the transaction's own flags and the customer windows."""
    names = list(TRANSACTION_FEATURES[1:])  # tx_amount is already a column of the table
    for days in params.customer_windows_days:
        names += customer_window_features(days)
    return names


def terminal_columns(params: FeatureParams) -> list[str]:
    """What the terminal partitioning gives: the terminal windows."""
    return [name for days in params.terminal_windows_days for name in terminal_window_features(days)]


def features_on_partition(
    part: pd.DataFrame, params: FeatureParams, delay_days: int, keep: list[str], carry: list[str]
) -> pd.DataFrame:
    """``compute_features`` on one key-partition: the ``carry`` columns and the features named ``keep``.

    The partition holds whole histories of its keys only for one of the two halves, so the other
    half's columns are computed and dropped (the price of one feature definition).
    """
    known = part[LABEL].fillna(0).to_numpy(dtype=np.float64)  # as the single process: unknown = genuine
    features = compute_features(part, known, params, delay_days)
    return pd.concat([part[carry], features[keep]], axis=1)


def feature_frame(
    tx_paths: Sequence[Path], label_paths: Sequence[Path], params: Params, piece_rows: int = PIECE_ROWS
) -> dd.DataFrame:
    """The feature table as a lazy Dask frame, one partition per input piece, in the single order."""
    import dask.dataframe as dd

    groups = list_row_groups(tx_paths, TIME)
    if not groups:
        raise ValueError("no transactions to compute features for")
    check_time_order(groups)
    pieces = make_pieces(groups, piece_rows)
    tx = dd.from_map(read_transactions, pieces)
    labels = dd.from_map(read_labels, make_pieces(list_row_groups(label_paths), piece_rows))
    frame = tx.merge(labels, on="transaction_id", how="left")
    fp, delay = params.features, params.data.label_delay_days
    by_customer = frame.shuffle(on="customer_id").map_partitions(
        features_on_partition, fp, delay, customer_columns(fp), list(frame.columns)
    )
    by_terminal = frame.shuffle(on="terminal_id").map_partitions(
        features_on_partition, fp, delay, terminal_columns(fp), [ROW]
    )
    # back to the input's partitions: piece i's rows are exactly the row numbers in [i, i + 1) * 2**32
    bounds = [p.number << ROW_BITS for p in pieces] + [((len(pieces) - 1) << ROW_BITS) + (1 << ROW_BITS) - 1]
    joined = by_customer.set_index(ROW, divisions=bounds).join(by_terminal.set_index(ROW, divisions=bounds))
    order = [c for c in tx.columns if c != ROW] + [LABEL] + feature_names(fp)[1:]
    return joined.map_partitions(put_in_order, order)


def put_in_order(part: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """One input partition's rows as the single process orders them: by time, ties in input order."""
    return part.sort_index().sort_values(TIME, kind="stable").reset_index(drop=True)[columns]


def partition_rows(memory_limits: Sequence[int]) -> int:
    """Rows a partition may hold on workers with these memory limits (bytes; 0: no limit).

    A task's rows must fit the smallest worker's budget with room to spare: a worker whose memory
    passes 80 % of its limit pauses, and memory a running task holds cannot be spilled, so a
    partition too large for its worker waits forever (or gets the worker killed) instead of failing.
    """
    limits = [limit for limit in memory_limits if limit]
    if not limits:
        return PIECE_ROWS
    room = min(limits) * WORKER_BUDGET - WORKER_BASE_BYTES
    rows = min(PIECE_ROWS, int(room // TASK_BYTES_PER_ROW))
    if rows < MIN_PIECE_ROWS:
        need = (WORKER_BASE_BYTES + MIN_PIECE_ROWS * TASK_BYTES_PER_ROW) / WORKER_BUDGET
        raise ValueError(
            f"a Dask worker's memory limit of {min(limits) / 1024**2:,.0f} MiB leaves no room for the "
            f"features of {MIN_PIECE_ROWS:,} transactions: give each worker at least {need / 1024**2:,.0f} "
            "MiB (FRAUDOPS_DASK_WORKER_MEMORY, or the workers of FRAUDOPS_DASK_SCHEDULER)"
        )
    return rows


def worker_memory_limits(client: Client) -> list[int]:
    """Each worker's memory limit in bytes (0: none), as the scheduler knows them."""
    return [int(w.get("memory_limit") or 0) for w in client.scheduler_info(n_workers=-1)["workers"].values()]


def write_feature_table(
    client: Client,
    tx_paths: Sequence[Path],
    label_paths: Sequence[Path],
    params: Params,
    out: Path,
    piece_rows: int | None = None,
) -> int:
    """Compute the feature table on ``client``'s cluster and write it to ``out`` (one Parquet file).

    Partitions hold ``piece_rows`` rows, by default as many as the smallest worker's memory limit
    allows (:func:`partition_rows`). The workers write their partitions beside ``out``; this process
    then appends them to ``out`` one at a time, so it never holds more than one partition. Returns
    the number of rows written.
    """
    if piece_rows is None:
        piece_rows = partition_rows(worker_memory_limits(client))
        log.info("Dask features: partitions of up to %s rows", f"{piece_rows:,}")
    frame = feature_frame(tx_paths, label_paths, params, piece_rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".features-parts-") as parts:
        write = frame.to_parquet(
            parts, write_index=False, compute=False, name_function=lambda i: f"part-{i:06d}.parquet"
        )
        client.compute(write).result()
        return concat_parts(sorted(Path(parts).glob("part-*.parquet")), out)


def concat_parts(parts: Sequence[Path], out: Path) -> int:
    """Append the partitions' files to one file, in order; labels as integers when all are known.

    The single process's label column is integer when every transaction has its label and float
    (NaN for not known yet) otherwise: the partitions alone cannot tell, so the whole decides here.
    Dask's pandas metadata (its own string type) is left out: pandas reads the columns' Arrow types
    back as the single process's table has them.
    """
    all_known = all(pq.read_table(p, columns=[LABEL]).column(0).null_count == 0 for p in parts)
    rows, writer = 0, None
    try:
        for part in parts:
            table = pq.read_table(part).replace_schema_metadata(None)
            if all_known:
                at = table.schema.get_field_index(LABEL)
                table = table.set_column(at, LABEL, table.column(LABEL).cast(pa.int64()))
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows
