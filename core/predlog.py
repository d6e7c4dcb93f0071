"""The prediction log and the feedback log: schema, writer and reader in one place.

Both logs live in one SQLite database (``Settings.prediction_log``, ``stores/predictions.db``) in WAL
mode, so monitoring reads while serving writes and neither waits for the other:

``prediction_batches``
    what the API's :class:`PredictionWriter` commits: one row per write holding many scored
    transactions as columns (:class:`PredictionBatch`: numpy arrays stored as BLOBs, the ids as a JSON
    list, the features under their names), with the first and last transaction time (epoch
    microseconds, UTC) indexed for window reads. Storing a batch costs about a microsecond a
    transaction, against ten for a row of 25 SQLite values, and the API scores on the same core.
``predictions``
    one row per transaction appended synchronously (:func:`append_predictions`: tools, tests), with the
    columns of :func:`prediction_columns`. ``tx_datetime`` is ISO-8601 UTC text with microseconds
    (``2026-01-22T10:00:00.000000+00:00``, see :func:`format_tx_datetime`), so text order is time
    order and its index serves the reads of a window of transaction days. The feature columns follow
    ``params.yaml``: a writer with new features adds their columns (older rows read as NaN there); no
    column or row is ever dropped.

:func:`read_predictions` reads both as one table of :func:`prediction_columns`: rows of ``predictions``
first, then the batches in the order they were written; rescoring a transaction adds a record, and
the newest wins.
``feedback``
    one row per label received: :data:`FEEDBACK_COLUMNS` (the label and the day it was received);
    the newest label of a transaction wins.

Writers: the API submits :class:`PredictionBatch` es (or row tuples) to a :class:`PredictionWriter`,
whose background thread commits them off the request path; :func:`append_predictions` and :func:`append_feedback` write
synchronously (feedback, tests, tools). Readers (:func:`read_predictions`, :func:`read_feedback`) open
the database read-only and never create it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
import pandas as pd

from core.schemas import LABEL_COLUMNS, SCORE_COLUMNS, TRANSACTION_COLUMNS

log = logging.getLogger(__name__)

PREDICTIONS_TABLE = "predictions"
BATCHES_TABLE = "prediction_batches"
FEEDBACK_TABLE = "feedback"
FEEDBACK_COLUMNS = [*LABEL_COLUMNS, "received_on"]
BUSY_TIMEOUT_S = 5.0

FEATURE_TYPE = "REAL"
_PREDICTION_TYPES = {
    "transaction_id": "TEXT NOT NULL",
    "tx_datetime": "TEXT NOT NULL",  # ISO-8601 UTC with microseconds: sortable as text
    "customer_id": "INTEGER",
    "terminal_id": "INTEGER",
    "tx_amount": "REAL",
    "fraud_probability": "REAL",
    "is_fraud": "INTEGER",  # 0 or 1
    "threshold": "REAL",
    "model_version": "TEXT",
    "scored_at": "TEXT",  # ISO-8601
}
_FEEDBACK_TYPES = {
    "transaction_id": "TEXT NOT NULL",
    "tx_fraud": "INTEGER",
    "tx_fraud_scenario": "INTEGER",
    "received_on": "TEXT",  # ISO date
}
# every column of the shared schemas has a type here: a column added there fails loudly at import
_BASE_PREDICTION_COLUMNS = [*TRANSACTION_COLUMNS, *SCORE_COLUMNS]
assert set(_PREDICTION_TYPES) == set(_BASE_PREDICTION_COLUMNS), "predlog types out of date"
assert set(_FEEDBACK_TYPES) == set(FEEDBACK_COLUMNS), "predlog types out of date"
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


# sqlite3 would store numpy scalars that are not float subclasses as BLOBs (their buffer): bind them as
# the Python numbers they are (process-wide, and only ever more correct for other sqlite3 users)
def _numpy_item(value: Any) -> int | float:
    return cast(int | float, value.item())


_NUMPY_SCALARS: tuple[type[Any], ...] = (
    *(np.bool_, np.int8, np.int16, np.int32, np.int64),
    *(np.uint8, np.uint16, np.uint32, np.uint64, np.float16, np.float32),
)
for _numpy_type in _NUMPY_SCALARS:
    sqlite3.register_adapter(_numpy_type, _numpy_item)


def prediction_columns(features: list[str]) -> list[str]:
    """Columns of a prediction-log record, in order: transaction, ``f_<feature>``, score (``scored_at`` last).

    This is also the order of a :class:`PredictionWriter` row tuple and of :func:`read_predictions`'
    columns.
    """
    return TRANSACTION_COLUMNS + [f"f_{name}" for name in features] + SCORE_COLUMNS


def format_tx_datetime(value: str | dt.datetime) -> str:
    """The log's form of a transaction time: ISO-8601 in UTC with microseconds (naive means UTC)."""
    stamp = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if isinstance(stamp, pd.Timestamp):
        stamp = stamp.to_pydatetime()
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.astimezone(dt.UTC).isoformat(timespec="microseconds")


class PredictionLogError(RuntimeError):
    """The prediction log cannot take rows now (the API answers 503)."""


class PredictionLogFull(PredictionLogError):
    """More rows wait for the disk than the writer may hold: the log is not keeping up or failing."""


class PredictionLogClosed(PredictionLogError):
    """Rows submitted to a writer that has been closed."""


# ---------------------------------------------------------------------------------------------------
# a batch of scored transactions as columns


_BATCH_TYPES = {
    "first_us": "INTEGER NOT NULL",  # the earliest transaction time, epoch microseconds (UTC)
    "last_us": "INTEGER NOT NULL",  # the latest
    "rows": "INTEGER NOT NULL",
    "features": "TEXT NOT NULL",  # JSON list of the feature names, the columns of feature_values
    "transaction_id": "BLOB NOT NULL",  # JSON list of str
    "tx_us": "BLOB NOT NULL",  # int64 epoch microseconds
    "customer_id": "BLOB NOT NULL",  # int64
    "terminal_id": "BLOB NOT NULL",  # int64
    "tx_amount": "BLOB NOT NULL",  # float64
    "feature_values": "BLOB NOT NULL",  # float64, rows x features, row-major
    "fraud_probability": "BLOB NOT NULL",  # float64
    "is_fraud": "BLOB NOT NULL",  # uint8 0/1
    "segments": "TEXT NOT NULL",  # JSON [[rows, threshold, model_version, scored_at], ...] in row order
}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class PredictionBatch:
    """Scored transactions as columns, as the API produces them and :data:`BATCHES_TABLE` stores them.

    ``tx_us``: epoch microseconds (UTC); ``features``: rows x the writer's features; ``segments``: runs
    of consecutive rows sharing ``(rows, threshold, model_version, scored_at)``, one for a request.
    """

    transaction_id: list[str]
    tx_us: np.ndarray
    customer_id: np.ndarray
    terminal_id: np.ndarray
    tx_amount: np.ndarray
    features: np.ndarray
    fraud_probability: np.ndarray
    is_fraud: np.ndarray
    segments: list[tuple[int, float, str, str]]

    def __len__(self) -> int:
        return len(self.transaction_id)

    @classmethod
    def scored(
        cls,
        transaction_id: list[str],
        tx_us: np.ndarray,
        customer_id: Sequence[int],
        terminal_id: Sequence[int],
        tx_amount: Sequence[float],
        features: np.ndarray,
        fraud_probability: np.ndarray,
        threshold: float,
        model_version: str,
        scored_at: str,
    ) -> PredictionBatch:
        """One request's verdicts (decisions at ``threshold``)."""
        probability = np.asarray(fraud_probability, dtype=np.float64)
        return cls(
            transaction_id,
            np.asarray(tx_us, dtype=np.int64),
            np.asarray(customer_id, dtype=np.int64),
            np.asarray(terminal_id, dtype=np.int64),
            np.asarray(tx_amount, dtype=np.float64),
            np.asarray(features, dtype=np.float64),
            probability,
            probability >= threshold,
            [(len(transaction_id), float(threshold), str(model_version), scored_at)],
        )

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[Any, ...]], n_features: int) -> PredictionBatch:
        """Row tuples in :class:`PredictionWriter` order (see there) as a batch."""
        n = len(rows)
        width = len(TRANSACTION_COLUMNS)
        ids, times, customers, terminals, amounts = (
            list(c) for c in zip(*(r[:width] for r in rows), strict=True)
        )
        features = np.array([r[width : width + n_features] for r in rows], dtype=np.float64).reshape(
            n, n_features
        )
        score = [r[width + n_features :] for r in rows]
        segments: list[tuple[int, float, str, str]] = []
        for _, _, threshold, version, scored_at in score:
            key = (float(threshold), str(version), str(scored_at))
            if segments and segments[-1][1:] == key:
                segments[-1] = (segments[-1][0] + 1, *key)
            else:
                segments.append((1, *key))
        micros = pd.to_datetime(pd.Series(times, dtype=object), utc=True, format="ISO8601")
        return cls(
            [str(tid) for tid in ids],
            micros.astype("datetime64[us, UTC]").astype("int64").to_numpy(),
            np.array(customers, dtype=np.int64),
            np.array(terminals, dtype=np.int64),
            np.array(amounts, dtype=np.float64),
            features,
            np.array([r[0] for r in score], dtype=np.float64),
            np.array([bool(r[1]) for r in score], dtype=bool),
            segments,
        )

    @classmethod
    def concat(cls, batches: Sequence[PredictionBatch]) -> PredictionBatch:
        """One batch with the rows of ``batches``, in order."""
        if len(batches) == 1:
            return batches[0]

        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(b, name) for b in batches])

        return cls(
            [tid for b in batches for tid in b.transaction_id],
            joined("tx_us"),
            joined("customer_id"),
            joined("terminal_id"),
            joined("tx_amount"),
            joined("features"),
            joined("fraud_probability"),
            joined("is_fraud"),
            [segment for b in batches for segment in b.segments],
        )

    def record(self, features: list[str]) -> tuple[Any, ...]:
        """The :data:`BATCHES_TABLE` row of this batch (columns in :data:`_BATCH_TYPES` order)."""
        tx_us = np.ascontiguousarray(self.tx_us, dtype=np.int64)
        return (
            int(tx_us.min()),
            int(tx_us.max()),
            len(self),
            orjson.dumps(features).decode(),
            orjson.dumps(self.transaction_id),
            tx_us.tobytes(),
            np.ascontiguousarray(self.customer_id, dtype=np.int64).tobytes(),
            np.ascontiguousarray(self.terminal_id, dtype=np.int64).tobytes(),
            np.ascontiguousarray(self.tx_amount, dtype=np.float64).tobytes(),
            np.ascontiguousarray(self.features, dtype=np.float64).tobytes(),
            np.ascontiguousarray(self.fraud_probability, dtype=np.float64).tobytes(),
            np.ascontiguousarray(self.is_fraud, dtype=np.uint8).tobytes(),
            orjson.dumps(self.segments).decode(),
        )


_BLOB_OF = {  # prediction column -> the batch BLOB holding it, and its numpy type
    "customer_id": np.int64,
    "terminal_id": np.int64,
    "tx_amount": np.float64,
    "fraud_probability": np.float64,
}
_SEGMENT_FIELDS = {"threshold": (1, np.float64), "model_version": (2, object), "scored_at": (3, object)}
_BATCH_READ = [
    "rows",
    "features",
    "segments",
    "tx_us",
    "transaction_id",
    *_BLOB_OF,
    "is_fraud",
    "feature_values",
]


def _decode_batches(stored: list[tuple[Any, ...]], names: list[str]) -> pd.DataFrame:
    """Stored batches (rows of :data:`_BATCH_READ`, in write order) as one frame of ``names`` (columns of
    :func:`prediction_columns`; features a batch lacks are NaN) plus ``_tx_us``, epoch microseconds."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ["_tx_us", *names]}
    for rows, features_json, segments_json, tx_us, ids, *rest in stored:
        blobs = dict(zip(_BATCH_READ[5:], rest, strict=True))
        parts["_tx_us"].append(np.frombuffer(tx_us, dtype=np.int64))
        matrix, stored_features = None, [f"f_{name}" for name in orjson.loads(features_json)]
        segments = orjson.loads(segments_json) if set(names) & set(_SEGMENT_FIELDS) else []
        for name in names:
            if name == "transaction_id":
                column = np.array(orjson.loads(ids), dtype=object)
            elif name == "tx_datetime":
                column = np.frombuffer(tx_us, dtype=np.int64)
            elif name in _BLOB_OF:
                column = np.frombuffer(blobs[name], dtype=_BLOB_OF[name])
            elif name == "is_fraud":
                column = np.frombuffer(blobs["is_fraud"], dtype=np.uint8).astype(bool)
            elif name in _SEGMENT_FIELDS:
                position, kind = _SEGMENT_FIELDS[name]
                values = np.array([segment[position] for segment in segments], dtype=kind)
                column = np.repeat(values, [segment[0] for segment in segments])
            elif name in stored_features:
                if matrix is None:
                    matrix = np.frombuffer(blobs["feature_values"], dtype=np.float64)
                    matrix = matrix.reshape(rows, len(stored_features))
                column = matrix[:, stored_features.index(name)]
            else:  # a feature this batch's writer did not have
                column = np.full(rows, np.nan)
            parts[name].append(column)
    frame = pd.DataFrame(
        {name: np.concatenate(columns) if columns else np.empty(0) for name, columns in parts.items()}
    )
    if "tx_datetime" in frame.columns:
        micros = frame["tx_datetime"].to_numpy(dtype=np.int64)
        frame["tx_datetime"] = pd.Series(micros.astype("datetime64[us]"), index=frame.index).dt.tz_localize(
            "UTC"
        )
    return frame


# ---------------------------------------------------------------------------------------------------
# connections and schema


def _quote(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid prediction-log column name {name!r}")
    return f'"{name}"'


def _column_type(table: str, column: str) -> str:
    types = _PREDICTION_TYPES if table == PREDICTIONS_TABLE else _FEEDBACK_TYPES
    if column in types:
        return types[column]
    if table == PREDICTIONS_TABLE and column.startswith("f_"):
        return FEATURE_TYPE
    raise ValueError(f"{column!r} is not a column of the {table} log")


def _connect(path: Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A read-write connection (autocommit; transactions are explicit), creating the file if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("prediction log %s: journal mode %s, not WAL", path, mode)
        conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE (the write lock up front, waiting up to the busy timeout) … COMMIT or ROLLBACK."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _ensure_schema(conn: sqlite3.Connection, prediction_cols: Iterable[str] = ()) -> None:
    """Create the tables and their indexes if missing; add the prediction columns ``predictions`` lacks."""
    wanted = list(dict.fromkeys([*_BASE_PREDICTION_COLUMNS, *prediction_cols]))
    with _transaction(conn):
        for table, columns in ((PREDICTIONS_TABLE, wanted), (FEEDBACK_TABLE, FEEDBACK_COLUMNS)):
            spec = ", ".join(f"{_quote(c)} {_column_type(table, c)}" for c in columns)
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({spec})")
            existing = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column not in existing:
                    ctype = _column_type(table, column).replace(" NOT NULL", "")
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {_quote(column)} {ctype}")
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {PREDICTIONS_TABLE}_tx_datetime ON {PREDICTIONS_TABLE} (tx_datetime)"
        )
        spec = ", ".join(f"{name} {kind}" for name, kind in _BATCH_TYPES.items())
        conn.execute(f"CREATE TABLE IF NOT EXISTS {BATCHES_TABLE} ({spec})")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {BATCHES_TABLE}_last_us ON {BATCHES_TABLE} (last_us)")


def _insert_sql(table: str, columns: list[str]) -> str:
    names = ", ".join(_quote(c) for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"


def _plain(value: object) -> object:
    """A value sqlite3 binds: numpy scalars as Python numbers, datetimes and dates as ISO text."""
    if isinstance(value, dt.datetime):
        return (value.to_pydatetime() if isinstance(value, pd.Timestamp) else value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, str | bytes):
        return item()
    return value


# ---------------------------------------------------------------------------------------------------
# the API's batched writer


class PredictionWriter:
    """Commits scored transactions to the prediction log from one background thread.

    The API submits a :class:`PredictionBatch` per request (:meth:`submit_batch`); :meth:`submit` takes
    row tuples in the order of :attr:`columns` (= :func:`prediction_columns` of the features:
    ``transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, f_<feature>...,
    fraud_probability, is_fraud, threshold, model_version, scored_at``): ``transaction_id`` str,
    ``tx_datetime`` str from :func:`format_tx_datetime`, ``customer_id`` and ``terminal_id`` int,
    ``tx_amount`` and the features float, ``fraud_probability`` float, ``is_fraud`` 0/1,
    ``threshold`` float, ``model_version`` str, ``scored_at`` ISO-8601 str.

    Submitting only appends to a queue (it is on the request path); every ``flush_interval_s`` the
    thread writes what waits as one :data:`BATCHES_TABLE` row in one transaction. A failed write (disk
    full, database locked) is logged and retried at the next interval with the same rows; while more
    than ``max_pending`` rows wait, submitting raises :class:`PredictionLogFull`. Rows are never
    dropped: :meth:`close` returns once all are committed (or its timeout has passed, logged).
    """

    def __init__(
        self,
        path: Path,
        features: list[str],
        flush_interval_s: float = 0.1,
        max_pending: int = 200_000,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        if flush_interval_s <= 0 or max_pending < 1:
            raise ValueError("flush_interval_s must be positive and max_pending at least 1")
        self.path = path
        self.columns: list[str] = prediction_columns(features)
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.busy_timeout_s = busy_timeout_s
        self.last_error: Exception | None = None
        self.features = list(features)
        self._sql = _insert_sql(BATCHES_TABLE, list(_BATCH_TYPES))
        self._width = len(self.columns)
        self._cond = threading.Condition()
        self._queue: list[PredictionBatch] = []  # submitted, not yet taken by the thread
        self._batch: list[PredictionBatch] = []  # taken by the thread, not yet committed
        self._submitted = 0
        self._written = 0
        self._urgent = False  # a flush waits: write without waiting for the interval
        self._failed = False  # the last write failed: wait a whole interval before retrying
        self._closing = False
        self._stop = False  # leave even with rows pending (close timed out)
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._failures = 0
        self._last_report = 0.0

    # -- the request path --------------------------------------------------------------------------

    def submit(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Queue row tuples for the next write; never touches the disk.

        Raises ValueError for a row of the wrong width or without id or time, PredictionLogFull when
        more than ``max_pending`` rows would wait, PredictionLogClosed after :meth:`close`.
        """
        width = self._width
        for row in rows:
            if len(row) != width or row[0] is None or row[1] is None:
                raise ValueError(f"a prediction-log row has {width} values in the order of .columns")
        if rows:
            try:
                batch = PredictionBatch.from_rows(rows, len(self.features))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"a prediction-log row holds a value of the wrong type: {exc}") from exc
            self.submit_batch(batch)

    def submit_batch(self, batch: PredictionBatch) -> None:
        """Queue a batch (features in the writer's order) for the next write; never touches the disk.

        Raises ValueError for features of the wrong width, PredictionLogFull when more than
        ``max_pending`` rows would wait, PredictionLogClosed after :meth:`close`.
        """
        if batch.features.shape != (len(batch), len(self.features)):
            raise ValueError(f"a batch has {len(self.features)} feature columns ({', '.join(self.features)})")
        with self._cond:
            if self._closing:
                raise PredictionLogClosed(f"prediction log {self.path} is closed")
            waiting = self._submitted - self._written
            if waiting + len(batch) > self.max_pending:
                raise PredictionLogFull(
                    f"prediction log {self.path}: {waiting} rows wait to be written "
                    f"(limit {self.max_pending}); last error: {self.last_error!r}"
                )
            self._queue.append(batch)
            self._submitted += len(batch)

    @property
    def pending(self) -> int:
        """Rows submitted and not yet committed."""
        with self._cond:
            return self._submitted - self._written

    @property
    def written(self) -> int:
        """Rows committed by this writer."""
        with self._cond:
            return self._written

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> PredictionWriter:
        """Start the background thread (once)."""
        with self._cond:
            if self._closing:
                raise PredictionLogClosed(f"prediction log {self.path} is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
                self._thread.start()
        return self

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every row submitted before this call is committed; False if ``timeout`` passed."""
        with self._cond:
            target = self._submitted
            if self._written >= target:
                return True
            if self._thread is None or not self._thread.is_alive():
                raise PredictionLogError("the prediction-log writer is not running: call start()")
            self._urgent = True
            self._cond.notify_all()
            thread = self._thread
            self._cond.wait_for(lambda: self._written >= target or not thread.is_alive(), timeout)
            return self._written >= target

    def close(self, timeout: float | None = None) -> bool:
        """Commit everything submitted, then stop the thread; idempotent.

        Waits for as long as writing fails unless ``timeout`` is given; returns False (and logs how
        many rows stayed unwritten) when the timeout passed first.
        """
        with self._cond:
            if self._closing and self._thread is None:
                return self._submitted == self._written
            needs_thread = self._thread is None and self._submitted > self._written
        if needs_thread:
            self.start()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
            if thread is None:
                return True
            self._cond.wait_for(lambda: self._written >= self._submitted or not thread.is_alive(), timeout)
            done = self._written >= self._submitted
            if not done:
                self._stop = True
                self._cond.notify_all()
                log.error(
                    "prediction log %s: closing with %d rows not written (last error: %r)",
                    self.path,
                    self._submitted - self._written,
                    self.last_error,
                )
        thread.join()
        with self._cond:
            self._thread = None
        return done

    def __enter__(self) -> PredictionWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the background thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    if self._failed:
                        self._cond.wait_for(lambda: self._stop, self.flush_interval_s)
                    else:
                        self._cond.wait_for(
                            lambda: self._stop or self._urgent or self._closing, self.flush_interval_s
                        )
                    if self._stop:
                        return
                    self._urgent = False
                    if not self._batch:
                        self._batch, self._queue = self._queue, []
                    elif self._queue:
                        self._batch.extend(self._queue)
                        self._queue = []
                    batch = self._batch
                    if not batch:
                        if self._closing:
                            return
                        continue
                ok = self._write(batch)  # outside the lock: submitting never waits for the disk
                with self._cond:
                    self._failed = not ok
                    if ok:
                        self._written += sum(len(b) for b in batch)
                        self._batch = []
                        self._cond.notify_all()
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            with self._cond:  # wake flush() and close() even if the thread died
                self._cond.notify_all()

    def _write(self, batches: list[PredictionBatch]) -> bool:
        """One transaction storing ``batches`` as one row; False (rows kept) when it failed."""
        try:
            if len(batches) > 1:
                batches[:] = [PredictionBatch.concat(batches)]  # a retry writes the same row
            record = batches[0].record(self.features)
            if self._conn is None:
                self._conn = _connect(self.path, self.busy_timeout_s)
                _ensure_schema(self._conn, self.columns)
            with _transaction(self._conn):
                self._conn.execute(self._sql, record)
        except Exception as exc:
            self._failed_write(exc, sum(len(b) for b in batches))
            return False
        if self._failures:
            log.warning(
                "prediction log %s: written again after %d failed attempts", self.path, self._failures
            )
            self._failures = 0
        return True

    def _failed_write(self, exc: Exception, rows: int) -> None:
        self.last_error = exc
        self._failures += 1
        now = time.monotonic()
        if self._failures == 1 or now - self._last_report >= 10.0:
            self._last_report = now
            log.error(
                "prediction log %s: writing %d rows failed (attempt %d: %r); kept, retrying every %.2f s",
                self.path,
                rows,
                self._failures,
                exc,
                self.flush_interval_s,
            )
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None


# ---------------------------------------------------------------------------------------------------
# synchronous writers


def _append(path: Path, table: str, records: Iterable[dict[str, object]], order: list[str]) -> int:
    recs = list(records)
    if not recs:
        return 0
    keys = dict.fromkeys(key for rec in recs for key in rec)
    for key in keys:
        _column_type(table, key)  # unknown columns are an error, not silently stored
    columns = [c for c in order if c in keys] + [c for c in keys if c not in order]
    rows = []
    for rec in recs:
        row = [_plain(rec.get(c)) for c in columns]
        if table == PREDICTIONS_TABLE:
            stamp = rec["tx_datetime"]
            when = stamp if isinstance(stamp, str | dt.datetime) else str(stamp)
            row[columns.index("tx_datetime")] = format_tx_datetime(when)
            if rec.get("is_fraud") is not None:
                row[columns.index("is_fraud")] = int(bool(rec["is_fraud"]))
        rows.append(tuple(row))
    conn = _connect(path)
    try:
        _ensure_schema(conn, columns if table == PREDICTIONS_TABLE else ())
        with _transaction(conn):
            conn.executemany(_insert_sql(table, columns), rows)
    finally:
        conn.close()
    return len(rows)


def append_predictions(path: Path, records: Iterable[dict[str, object]]) -> int:
    """Append scored transactions (dicts keyed by :func:`prediction_columns`); returns rows written.

    ``transaction_id`` and ``tx_datetime`` are required (the time is stored by
    :func:`format_tx_datetime`); other missing values are stored as NULL.
    """
    recs = list(records)
    if any(rec.get("transaction_id") is None or rec.get("tx_datetime") is None for rec in recs):
        raise ValueError("a prediction-log record needs transaction_id and tx_datetime")
    features = [key for key in dict.fromkeys(k for rec in recs for k in rec) if key.startswith("f_")]
    return _append(path, PREDICTIONS_TABLE, recs, TRANSACTION_COLUMNS + features + SCORE_COLUMNS)


def append_feedback(path: Path, records: Iterable[dict[str, object]]) -> int:
    """Append fraud labels (:data:`FEEDBACK_COLUMNS`, ``received_on`` the ISO day they came in)."""
    recs = list(records)
    if any(rec.get("transaction_id") is None for rec in recs):
        raise ValueError("a feedback record needs a transaction_id")
    return _append(path, FEEDBACK_TABLE, recs, FEEDBACK_COLUMNS)


# ---------------------------------------------------------------------------------------------------
# readers


def _connect_read_only(path: Path) -> sqlite3.Connection | None:
    """A read-only connection, or None when the database does not exist (it is never created)."""
    if not path.is_file():
        return None
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    except sqlite3.OperationalError:
        if not path.is_file():  # removed in between
            return None
        raise


def _table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def _typed(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Numbers as numbers (NULL as NaN), ``is_fraud`` as bool when complete, text left as text."""
    for column in frame.columns:
        ctype = _column_type(table, column)
        if ctype.startswith(("REAL", "INTEGER")):
            frame[column] = pd.to_numeric(frame[column])
            if ctype.startswith("REAL"):
                frame[column] = frame[column].astype("float64")
    if "is_fraud" in frame.columns and not frame["is_fraud"].isna().any():
        frame["is_fraud"] = frame["is_fraud"].astype(bool)
    return frame


def read_predictions(
    path: Path, start: dt.date | None = None, end: dt.date | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Scored transactions whose transaction day (UTC) lies in [start, end]; the newest score per id wins.

    Both stores are read (:data:`PREDICTIONS_TABLE` rows first, then :data:`BATCHES_TABLE` in write
    order). Columns in :func:`prediction_columns` order (features that only some records have are NaN
    in the others), ``tx_datetime`` as a UTC datetime. An empty frame when nothing was logged.
    ``columns``: only those (and ``transaction_id``), for reads of many rows that need few of them.
    """
    conn = _connect_read_only(path)
    if conn is None:
        return pd.DataFrame()
    with contextlib.closing(conn):
        stored = _table_columns(conn, PREDICTIONS_TABLE)
        has_batches = bool(_table_columns(conn, BATCHES_TABLE))
        if not stored and not has_batches:
            return pd.DataFrame()
        first_day = None if start is None else start.isoformat()
        after_last = None if end is None or end >= dt.date.max else (end + dt.timedelta(days=1)).isoformat()
        frames = []
        if stored:
            frames.append(_read_rows(conn, _selected(stored, columns), first_day, after_last))
        if has_batches:
            frames.append(_read_batches(conn, stored, columns, first_day, after_last))
    present = [f for f in frames if not f.empty]
    if not present:
        return frames[0]
    frame = present[0] if len(present) == 1 else pd.concat(present, ignore_index=True)
    frame = frame.drop_duplicates("transaction_id", keep="last").reset_index(drop=True)
    features = [c for f in frames for c in f.columns if c.startswith("f_")]
    order = TRANSACTION_COLUMNS + list(dict.fromkeys(features)) + SCORE_COLUMNS
    return frame[[c for c in order if c in frame.columns]]


def _read_rows(
    conn: sqlite3.Connection, names: list[str], first_day: str | None, after_last: str | None
) -> pd.DataFrame:
    """The rows of :data:`PREDICTIONS_TABLE` in the window, in write order, newest per id."""
    where, args = [], []
    if first_day is not None:
        where.append("tx_datetime >= ?")
        args.append(first_day)
    if after_last is not None:
        where.append("tx_datetime < ?")
        args.append(after_last)
    sql = f"SELECT rowid, {', '.join(_quote(c) for c in names)} FROM {PREDICTIONS_TABLE}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = conn.execute(sql, args).fetchall()
    frame = _frame(rows, PREDICTIONS_TABLE, names, first=("_rowid", "i8"))
    frame = frame.sort_values("_rowid", kind="stable").drop_duplicates("transaction_id", keep="last")
    frame = _typed(frame.drop(columns="_rowid").reset_index(drop=True), PREDICTIONS_TABLE)
    if "tx_datetime" in frame.columns:
        frame["tx_datetime"] = _utc_datetimes(frame["tx_datetime"])
    return frame


def _micros(day: str) -> int:
    return (dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) - _EPOCH) // dt.timedelta(microseconds=1)


def _read_batches(
    conn: sqlite3.Connection,
    row_columns: list[str],
    columns: Sequence[str] | None,
    first_day: str | None,
    after_last: str | None,
) -> pd.DataFrame:
    """The transactions of :data:`BATCHES_TABLE` in the window, in write order."""
    where, args = [], []
    if first_day is not None:
        where.append("last_us >= ?")
        args.append(_micros(first_day))
    if after_last is not None:
        where.append("first_us < ?")
        args.append(_micros(after_last))
    sql = f"SELECT {', '.join(_BATCH_READ)} FROM {BATCHES_TABLE}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    stored = conn.execute(sql + " ORDER BY rowid", args).fetchall()
    features = [f"f_{name}" for record in stored for name in orjson.loads(record[1])]
    names = _selected(
        list(dict.fromkeys([*TRANSACTION_COLUMNS, *row_columns, *features, *SCORE_COLUMNS])), columns
    )
    frame = _decode_batches(stored, names)
    keep = np.ones(len(frame), dtype=bool)
    if first_day is not None:
        keep &= frame["_tx_us"].to_numpy() >= _micros(first_day)
    if after_last is not None:
        keep &= frame["_tx_us"].to_numpy() < _micros(after_last)
    frame = frame[keep].drop(columns="_tx_us")
    return frame.drop_duplicates("transaction_id", keep="last").reset_index(drop=True)


def _selected(stored: list[str], columns: Sequence[str] | None) -> list[str]:
    """The stored columns to read, in :func:`prediction_columns` order (unknown names are an error)."""
    features = [c for c in stored if c.startswith("f_")]
    names = [c for c in TRANSACTION_COLUMNS + features + SCORE_COLUMNS if c in stored]
    if columns is None:
        return names
    for column in columns:
        _column_type(PREDICTIONS_TABLE, column)
    wanted = {"transaction_id", *columns}
    return [c for c in names if c in wanted]


def _frame(
    rows: list[tuple[Any, ...]], table: str, columns: list[str], first: tuple[str, str] | None = None
) -> pd.DataFrame:
    """Fetched rows as a frame: REAL columns straight to float64 (NULL as NaN), the others as objects.

    numpy converts the row tuples to a structured array in C, several times faster than
    ``DataFrame.from_records`` (0.4 s against 1 s for 300,000 rows of 26 columns); :func:`_typed` then
    types the other columns exactly as before. ``first``: an extra leading column and its numpy type.
    """
    kinds = [(c, "f8" if _column_type(table, c).startswith("REAL") else "O") for c in columns]
    array = np.array(rows, dtype=[first, *kinds] if first else kinds)
    assert array.dtype.names is not None
    return pd.DataFrame({name: array[name] for name in array.dtype.names})


def _utc_datetimes(stamps: pd.Series) -> pd.Series:
    """The log's ISO-8601 texts as UTC datetimes: Arrow parses them in C (25x pandas' ISO8601 parser)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if stamps.empty:  # pandas' type for no rows
        return pd.to_datetime(stamps, utc=True, format="ISO8601")
    try:
        parsed = pc.cast(pa.array(stamps), pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        # not the log's form (no offset, another resolution...): pandas' rules, and its error message
        return pd.to_datetime(stamps, utc=True, format="ISO8601")
    return pd.Series(parsed.to_pandas(), index=stamps.index, name=stamps.name)


def read_feedback(path: Path) -> pd.DataFrame:
    """All labels received so far (:data:`LABEL_COLUMNS`); the newest label per transaction wins."""
    conn = _connect_read_only(path)
    if conn is None:
        return pd.DataFrame(columns=LABEL_COLUMNS)
    with contextlib.closing(conn):
        if not _table_columns(conn, FEEDBACK_TABLE):
            return pd.DataFrame(columns=LABEL_COLUMNS)
        names = ", ".join(_quote(c) for c in LABEL_COLUMNS)
        rows = conn.execute(f"SELECT {names} FROM {FEEDBACK_TABLE} ORDER BY rowid").fetchall()
    frame = _frame(rows, FEEDBACK_TABLE, LABEL_COLUMNS)
    frame = frame.drop_duplicates("transaction_id", keep="last").reset_index(drop=True)
    return _typed(frame, FEEDBACK_TABLE)


# records in both stores, rescores included (SQL, for a connection of one's own)
COUNT_SQL = f"SELECT (SELECT COUNT(*) FROM {PREDICTIONS_TABLE}) + (SELECT COALESCE(SUM(rows), 0) FROM {BATCHES_TABLE})"


def count_records(path: Path) -> int:
    """Prediction records stored (rows and batched transactions; a rescore counts again); 0 without a log."""
    conn = _connect_read_only(path)
    if conn is None:
        return 0
    with contextlib.closing(conn):
        rows = 0
        if _table_columns(conn, PREDICTIONS_TABLE):
            rows += conn.execute(f"SELECT COUNT(*) FROM {PREDICTIONS_TABLE}").fetchone()[0]
        if _table_columns(conn, BATCHES_TABLE):
            rows += conn.execute(f"SELECT COALESCE(SUM(rows), 0) FROM {BATCHES_TABLE}").fetchone()[0]
        return int(rows)
