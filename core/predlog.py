"""The prediction log and the feedback log: schema, writer and reader in one place.

Both logs live in one SQLite database (``Settings.prediction_log``, ``stores/predictions.db``) in WAL
mode, so monitoring reads while serving writes and neither waits for the other:

``predictions``
    one row per scored transaction, with the columns of :func:`prediction_columns`: the transaction,
    the features exactly as the model saw them (``f_<name>``) and the verdict. ``tx_datetime`` is
    ISO-8601 UTC text with microseconds (``2026-01-22T10:00:00.000000+00:00``, see
    :func:`format_tx_datetime`), so text order is time order and its index serves the reads of a
    window of transaction days. Rescoring a transaction appends a row; readers keep the newest.
    The feature columns follow ``params.yaml``: a writer with new features adds their columns
    (older rows read as NaN there); no column or row is ever dropped.
``feedback``
    one row per label received: :data:`FEEDBACK_COLUMNS` (the label and the day it was received);
    the newest label of a transaction wins.

Writers: the API submits rows to a :class:`PredictionWriter`, whose background thread commits them in
batches off the request path; :func:`append_predictions` and :func:`append_feedback` write
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
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from core.schemas import LABEL_COLUMNS, SCORE_COLUMNS, TRANSACTION_COLUMNS

log = logging.getLogger(__name__)

PREDICTIONS_TABLE = "predictions"
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
    """Create both tables and the index if missing; add the prediction columns the table lacks."""
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
    """Commits scored transactions to the prediction log in batches, from one background thread.

    A row is a tuple in the order of :attr:`columns` (= :func:`prediction_columns` of the features:
    ``transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, f_<feature>...,
    fraud_probability, is_fraud, threshold, model_version, scored_at``) holding plain Python values:
    ``transaction_id`` str, ``tx_datetime`` str from :func:`format_tx_datetime`, ``customer_id`` and
    ``terminal_id`` int, ``tx_amount`` and the features float, ``fraud_probability`` float,
    ``is_fraud`` int 0/1, ``threshold`` float, ``model_version`` str, ``scored_at`` ISO-8601 str.

    :meth:`submit` only appends to a queue (it is on the request path); every ``flush_interval_s``
    the thread writes what waits with one ``executemany`` in one transaction. A failed write (disk
    full, database locked) is logged and retried at the next interval with the same rows; while more
    than ``max_pending`` rows wait, :meth:`submit` raises :class:`PredictionLogFull`. Rows are never
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
        self._sql = _insert_sql(PREDICTIONS_TABLE, self.columns)
        self._width = len(self.columns)
        self._cond = threading.Condition()
        self._queue: list[tuple[Any, ...]] = []  # submitted, not yet taken by the thread
        self._batch: list[tuple[Any, ...]] = []  # taken by the thread, not yet committed
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
        """Queue rows for the next batch; never touches the disk.

        Raises ValueError for a row of the wrong width or without id or time, PredictionLogFull when
        more than ``max_pending`` rows would wait, PredictionLogClosed after :meth:`close`.
        """
        width = self._width
        for row in rows:
            if len(row) != width or row[0] is None or row[1] is None:
                raise ValueError(f"a prediction-log row has {width} values in the order of .columns")
        with self._cond:
            if self._closing:
                raise PredictionLogClosed(f"prediction log {self.path} is closed")
            waiting = self._submitted - self._written
            if waiting + len(rows) > self.max_pending:
                raise PredictionLogFull(
                    f"prediction log {self.path}: {waiting} rows wait to be written "
                    f"(limit {self.max_pending}); last error: {self.last_error!r}"
                )
            self._queue.extend(rows)
            self._submitted += len(rows)

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
                ok = self._write(batch)  # outside the lock: submit never waits for the disk
                with self._cond:
                    self._failed = not ok
                    if ok:
                        self._written += len(batch)
                        self._batch = []
                        self._cond.notify_all()
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            with self._cond:  # wake flush() and close() even if the thread died
                self._cond.notify_all()

    def _write(self, batch: list[tuple[Any, ...]]) -> bool:
        """One transaction with every row of ``batch``; False (rows kept) when it failed."""
        try:
            if self._conn is None:
                self._conn = _connect(self.path, self.busy_timeout_s)
                _ensure_schema(self._conn, self.columns)
            try:
                with _transaction(self._conn):
                    self._conn.executemany(self._sql, batch)
            except (sqlite3.InterfaceError, sqlite3.ProgrammingError):
                # a value sqlite3 cannot bind (a numpy scalar...): convert the batch once and retry
                batch[:] = [tuple(_plain(v) for v in row) for row in batch]
                with _transaction(self._conn):
                    self._conn.executemany(self._sql, batch)
        except Exception as exc:
            self._failed_write(exc, len(batch))
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

    Columns in :func:`prediction_columns` order (features that only some rows have are NaN in the
    others), ``tx_datetime`` as a UTC datetime. An empty frame when nothing was logged. ``columns``:
    only those (and ``transaction_id``), for reads of many rows that need few of them: each value
    fetched from SQLite costs a Python object.
    """
    conn = _connect_read_only(path)
    if conn is None:
        return pd.DataFrame()
    with contextlib.closing(conn):
        stored = _table_columns(conn, PREDICTIONS_TABLE)
        if not stored:
            return pd.DataFrame()
        names = _selected(stored, columns)
        where, args = [], []
        if start is not None:
            where.append("tx_datetime >= ?")
            args.append(start.isoformat())
        if end is not None and end < dt.date.max:
            where.append("tx_datetime < ?")
            args.append((end + dt.timedelta(days=1)).isoformat())
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
