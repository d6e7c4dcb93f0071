"""The prediction log and the feedback log: one layout behind one small interface.

:class:`PredictionLog` is what serving, monitoring and tools use; :class:`SqlitePredictionLog` keeps it
in one SQLite database (``Settings.prediction_log``) in WAL mode, so monitoring reads while serving
writes and neither waits for the other. :class:`core.predlog_pg.PostgresPredictionLog` keeps the same
layout in PostgreSQL for the team setup's replicas (``FRAUDOPS_PREDICTION_LOG_URL``); both share their
reads (:class:`ArrowBatchLog`), and :func:`open_prediction_log` opens the one the settings name.

``batches``
    one row per logged batch: ``id`` (write order, and the cursor of :meth:`PredictionLog.read_after`),
    ``first_us`` and ``last_us`` (the earliest and latest transaction time, epoch microseconds UTC,
    indexed for window reads), ``rows``, and ``arrow``: the batch as one Arrow IPC stream of
    :func:`prediction_columns` (a request's threshold, model version and scoring time
    dictionary-encoded). Each batch carries its schema: a writer with new features adds their columns
    to its own batches, and older ones read as NaN there. Storing a batch costs about a microsecond a
    transaction (``benchmarks/predlog.py``), against about ten for a row of 25 SQLite values.
``feedback``
    one row per label received (:data:`FEEDBACK_COLUMNS`), ``transaction_id`` indexed. Labels arrive a
    few at a time and are read by transaction id (those of the transactions in a window), which the
    index answers in SQL; labels packed in blobs would have to be read whole to find a window's.

A rescored transaction is logged again and its newest record wins; the newest label wins too. Times
are read as pandas reads them: offsets converted to UTC, naive means UTC. Readers open the database
read-only and never create it. :class:`PredictionWriter` is the API's writer: it queues
:class:`PredictionBatch` es off the request path and appends them from a background thread.

What an acknowledged record survives
------------------------------------
The contract of every store behind :class:`PredictionLog`, kept by :class:`PredictionWriter` with it
(``docs/faults.md`` has the figures measured and the tests that prove each point):

* A score is acknowledged (its 200) once queued. The writer appends what waits every
  ``Settings.log_flush_interval_s`` (0.05 s), so an append that commits within the rest of
  :data:`~core.settings.PREDICTION_LOSS_WINDOW_S` (0.1 s) leaves a SIGKILL of the process at most the
  scores acknowledged in its last 100 ms to lose. A commit survives the process; SQLite's not the
  machine (in WAL mode with ``synchronous=NORMAL`` a power loss may roll back its last commits),
  PostgreSQL's that too (the server has flushed it to its WAL before the append returns).
* A label is committed before its 200 (:meth:`PredictionLog.append_feedback` is synchronous); a store
  that cannot take it answers 503 and nothing is applied.
* A write error stops the acknowledging: from a failed append until one succeeds, submitting raises
  :class:`PredictionLogFailing` (503 with Retry-After), so what a SIGKILL during an outage can lose is
  only what was acknowledged before the first failure was known. The rows queued are kept and
  retried every ``Settings.log_retry_interval_s``, and all written once the store takes writes again.
* The backlog is bounded: more than ``Settings.log_max_pending_rows`` rows waiting raises
  :class:`PredictionLogFull` (503). The API exports the backlog, its bound, the failed writes and the
  last error in ``/metrics``, and ``/health/ready`` fails while the log fails or the backlog is at its
  bound.
* A clean stop (:meth:`PredictionWriter.close`, or the program ending without it) writes everything
  acknowledged, waiting at most ``Settings.log_close_timeout_s`` for the store. Rows still unwritten
  then are saved to ``<log>.unwritten-<UTC time>.arrow`` (an Arrow IPC file of the same columns; the
  system's temporary folder when the log's folder refuses it), and an error says how many, where, and
  how to append them (:func:`append_unwritten`); if even that fails, the error gives their count.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import operator
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.schemas import LABEL_COLUMNS, SCORE_COLUMNS, TRANSACTION_COLUMNS
from core.settings import Settings

log = logging.getLogger(__name__)

FEEDBACK_COLUMNS = [*LABEL_COLUMNS, "received_on"]
# the Arrow type of each column a batch always has; features (f_<name>) are float64
COLUMN_TYPES: dict[str, pa.DataType] = {
    "transaction_id": pa.string(),
    "tx_datetime": pa.timestamp("us", tz="UTC"),
    "customer_id": pa.int64(),
    "terminal_id": pa.int64(),
    "tx_amount": pa.float64(),
    "fraud_probability": pa.float64(),
    "is_fraud": pa.bool_(),
    "threshold": pa.float64(),
    "model_version": pa.string(),
    "scored_at": pa.string(),
}
assert list(COLUMN_TYPES) == TRANSACTION_COLUMNS + SCORE_COLUMNS, "predlog types out of date"
# a batch of up to this many rows (a few MB) is serialised in memory and inserted as one value; a
# bigger one is streamed into its row (no second copy of it in memory)
IN_MEMORY_BATCH_ROWS = 16_384
SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY, first_us INTEGER NOT NULL,
    last_us INTEGER NOT NULL, rows INTEGER NOT NULL, arrow BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS batches_last_us ON batches (last_us);
CREATE TABLE IF NOT EXISTS feedback (transaction_id TEXT NOT NULL, tx_fraud INTEGER,
    tx_fraud_scenario INTEGER, received_on TEXT);
CREATE INDEX IF NOT EXISTS feedback_transaction_id ON feedback (transaction_id);
"""


def prediction_columns(features: Sequence[str]) -> list[str]:
    """Columns of a prediction-log record, in order: transaction, ``f_<feature>``, score (``scored_at`` last)."""
    return TRANSACTION_COLUMNS + [f"f_{name}" for name in features] + SCORE_COLUMNS


class PredictionLogError(RuntimeError):
    """The prediction log cannot take rows now (the API answers 503)."""


class PredictionLogFull(PredictionLogError):
    """More rows wait for the disk than the writer may hold: the log is not keeping up or failing."""


class PredictionLogClosed(PredictionLogError):
    """Rows submitted to a writer that has been closed."""


class PredictionLogFailing(PredictionLogError):
    """The last append failed: no score is acknowledged until one succeeds (the rows queued are kept)."""


@dataclass(frozen=True)
class Cursor:
    """A point in the log: the last batch and the last label read (0: the beginning)."""

    batch: int = 0
    label: int = 0


@dataclass(frozen=True)
class LogChanges:
    """What was logged after a cursor (newest record and label per transaction) and the cursor after it."""

    predictions: pd.DataFrame
    feedback: pd.DataFrame
    cursor: Cursor


class PredictionLog(Protocol):
    """The prediction and feedback logs, whatever stores them."""

    @property
    def location(self) -> LogLocation:
        """Where the log is, as :func:`prediction_log_at` takes it (a URL without its password)."""

    def append_predictions(self, batch: pa.Table) -> int:
        """Store a batch of :func:`prediction_columns` (see :func:`predictions_table`); returns its rows."""

    def append_feedback(self, labels: Iterable[Mapping[str, object]]) -> int:
        """Store labels (:data:`FEEDBACK_COLUMNS`, ``received_on`` an ISO day); returns their count.

        Raises :class:`PredictionLogError` when the store cannot take them now.
        """

    def read_predictions(
        self, start: dt.date | None = None, end: dt.date | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Records whose transaction day (UTC) is in [start, end], newest per id; ``columns``: only those."""

    def read_feedback(self, start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
        """Labels of the logged transactions of [start, end] (all labels without a range), newest per id."""

    def read_prediction(
        self, transaction_id: str, tx_datetime: dt.datetime | None = None
    ) -> dict[str, Any] | None:
        """The newest record of one transaction, or None; its time, when known, narrows the search
        (to the batches holding a transaction in the same second)."""

    def read_labels(self, transaction_ids: Sequence[str]) -> dict[str, int]:
        """The recorded label (``tx_fraud``) of each of ``transaction_ids`` that has one (the newest)."""

    def read_after(self, cursor: Cursor) -> LogChanges:
        """Everything logged after ``cursor``, and the cursor to read from next time."""

    def close(self) -> None:
        """Release the connections."""


# -- batches as Arrow tables -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PredictionBatch:
    """One request's verdicts as columns: ``tx_us`` epoch microseconds (UTC), ``features`` rows x the
    writer's features, one threshold, model version and scoring time."""

    transaction_id: Sequence[str]
    tx_us: np.ndarray
    customer_id: Sequence[int]
    terminal_id: Sequence[int]
    tx_amount: Sequence[float]
    features: np.ndarray
    fraud_probability: np.ndarray
    is_fraud: np.ndarray
    threshold: float
    model_version: str
    scored_at: str

    def __len__(self) -> int:
        return len(self.transaction_id)


_FIELDS = operator.attrgetter(*(field.name for field in fields(PredictionBatch)))


def batches_table(batches: Sequence[PredictionBatch], features: Sequence[str]) -> pa.Table:
    """The rows of ``batches``, in order, as one table of :func:`prediction_columns` (``features``).

    The writer's flush runs this on the server's core between requests: the batches' fields are
    gathered in one C-level pass (a few microseconds a batch), so a flush of many single-transaction
    requests costs little more than one of a single request.
    """
    (
        ids,
        tx_us,
        customers,
        terminals,
        amounts,
        matrices,
        probabilities,
        flags,
        thresholds,
        versions,
        times,
    ) = zip(*map(_FIELDS, batches), strict=True)
    lengths = np.fromiter(map(len, ids), np.int64, len(batches))
    total = int(lengths.sum())

    def values(parts: tuple[Any, ...], kind: Any) -> np.ndarray:
        if isinstance(parts[0], np.ndarray):
            return np.concatenate(parts).astype(kind, copy=False)
        return np.fromiter(itertools.chain.from_iterable(parts), kind, total)  # lists: no array each

    def joined(parts: tuple[Any, ...], kind: Any, arrow: pa.DataType) -> pa.Array:
        return _column(values(parts, kind), arrow)

    narrow = np.int16 if len(batches) < 2**15 else np.int32  # the dictionary columns' indices
    index = pa.array(np.repeat(np.arange(len(batches), dtype=narrow), lengths))

    def repeated(values: tuple[Any, ...], kind: Any) -> Any:  # one value a request: dictionary-encoded
        return pa.DictionaryArray.from_arrays(index, pa.array(values, kind))

    matrix = np.concatenate(matrices).T.astype(np.float64, order="C")  # a row a feature
    return pa.table(
        {
            "transaction_id": pa.array(list(itertools.chain.from_iterable(ids)), pa.string()),
            "tx_datetime": joined(tx_us, np.int64, COLUMN_TYPES["tx_datetime"]),
            "customer_id": joined(customers, np.int64, pa.int64()),
            "terminal_id": joined(terminals, np.int64, pa.int64()),
            "tx_amount": joined(amounts, np.float64, pa.float64()),
            **{f"f_{name}": _column(matrix[k], pa.float64()) for k, name in enumerate(features)},
            "fraud_probability": joined(probabilities, np.float64, pa.float64()),
            "is_fraud": pa.array(values(flags, bool)),
            "threshold": repeated(thresholds, pa.float64()),
            "model_version": repeated(versions, pa.string()),
            "scored_at": repeated(times, pa.string()),
        }
    )


def _column(values: np.ndarray, kind: pa.DataType) -> pa.Array:
    """A contiguous numpy array of 8-byte values, without nulls, as an Arrow array on its memory
    (a tenth of ``pa.array``'s cost, which a flush pays once per column)."""
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(np.ascontiguousarray(values))])


def predictions_table(records: Iterable[Mapping[str, object]]) -> pa.Table:
    """Records keyed by :func:`prediction_columns` as a batch; a missing value is null, an id and a time required."""
    frame = pd.DataFrame(list(records))
    _check_columns(frame.columns)
    if frame.reindex(columns=["transaction_id", "tx_datetime"]).isna().to_numpy().any():
        raise ValueError("a prediction-log record needs transaction_id and tx_datetime")
    frame["tx_datetime"] = pd.to_datetime(frame["tx_datetime"], utc=True, format="ISO8601")
    features = [name for name in frame.columns if str(name).startswith("f_")]
    frame = frame.reindex(columns=TRANSACTION_COLUMNS + features + SCORE_COLUMNS)
    frame["is_fraud"] = frame["is_fraud"].map(lambda v: None if pd.isna(v) else bool(v))
    for name in ("model_version", "scored_at"):  # text, times as ISO-8601
        frame[name] = frame[name].map(lambda v: None if pd.isna(v) else getattr(v, "isoformat", v.__str__)())
    columns = [
        pa.array(frame[name], COLUMN_TYPES.get(str(name), pa.float64()), from_pandas=True) for name in frame
    ]
    columns[-3:] = [column.dictionary_encode() for column in columns[-3:]]  # as batches_table stores them
    return pa.table(columns, list(frame))


def _check_columns(names: Iterable[object]) -> None:
    for name in names:
        if name not in COLUMN_TYPES and not str(name).startswith("f_"):
            raise ValueError(f"{name!r} is not a column of the prediction log")


def _integer(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _frame(table: pa.Table, order: Sequence[str]) -> pd.DataFrame:
    """``table`` as pandas, newest record per id, columns in ``order``; ``is_fraud`` numbers if incomplete."""
    frame = table.to_pandas().drop_duplicates("transaction_id", keep="last").reset_index(drop=True)
    if "is_fraud" in frame and frame["is_fraud"].dtype == object:
        frame["is_fraud"] = frame["is_fraud"].astype("float64")
    return frame[[name for name in order if name in frame.columns]]


def _labels(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """``feedback`` rows (in write order) as :data:`LABEL_COLUMNS`, the newest label per id."""
    frame = pd.DataFrame(rows, columns=LABEL_COLUMNS).drop_duplicates("transaction_id", keep="last")
    for name in LABEL_COLUMNS[1:]:
        frame[name] = pd.to_numeric(frame[name])
    return frame.reset_index(drop=True)


def _order(table: pa.Table) -> list[str]:
    return prediction_columns([name[2:] for name in table.schema.names if name.startswith("f_")])


# -- what every store of Arrow batches shares -------------------------------------------------------

Query = Callable[[str, Sequence[Any]], Iterable[tuple[Any, ...]]]  # SQL with ? placeholders -> rows


def _write_stream(sink: Any, batch: pa.Table) -> None:
    with pa.ipc.new_stream(sink, batch.schema) as stream:
        stream.write_table(batch)


def _micros(when: dt.date) -> int:
    """A day's start or a time as epoch microseconds (naive means UTC)."""
    return int(pd.Timestamp(when).value // 1000)


def _time_bounds(batch: pa.Table) -> tuple[int, int]:
    """The earliest and latest transaction time of a batch, epoch microseconds (its row's index keys)."""
    micros = batch["tx_datetime"].to_numpy().view(np.int64)  # numpy: a tenth of pyarrow.compute's call cost
    return int(micros.min()), int(micros.max())


def _feedback_rows(labels: Iterable[Mapping[str, object]]) -> list[tuple[Any, ...]]:
    """Labels as ``feedback`` rows (:data:`FEEDBACK_COLUMNS`); ValueError for an unknown column or no id."""
    rows = []
    for label in labels:
        if unknown := set(label) - set(FEEDBACK_COLUMNS):
            raise ValueError(f"{sorted(unknown)} is not a column of the feedback log")
        tid, fraud, scenario, day = (label.get(name) for name in FEEDBACK_COLUMNS)
        if tid is None:
            raise ValueError("a feedback record needs a transaction_id")
        received = day.isoformat() if isinstance(day, dt.date) else day
        rows.append((str(tid), _integer(fraud), _integer(scenario), received))
    return rows


class ArrowBatchLog:
    """The reads of a :class:`PredictionLog` kept as the layout above (``batches`` of Arrow streams and
    ``feedback`` rows) in an SQL store; a store supplies a snapshot to read in (:meth:`_reading`) and
    the two spots where SQL dialects differ."""

    LABEL_ID = "rowid"  # the feedback log's write order
    IDS_IN = "IN (SELECT value FROM json_each(?))"  # "transaction_id <IDS_IN>" with :meth:`_ids`

    @staticmethod
    def _ids(ids: Sequence[str]) -> Any:
        """The parameter of :attr:`IDS_IN` for ``ids``."""
        return orjson.dumps(list(ids)).decode()

    def _reading(self) -> contextlib.AbstractContextManager[Query | None]:
        """One read snapshot, or None when there is no log (readers never create one)."""
        raise NotImplementedError

    @staticmethod
    def _batches(query: Query, where: str, args: Sequence[Any], names: Sequence[str] | None) -> pa.Table:
        """The stored batches matching ``where``, in write order, as one table (``names``: only those)."""
        tables = []
        for (blob,) in query(f"SELECT arrow FROM batches WHERE {where} ORDER BY id", args):
            table = pa.ipc.open_stream(blob).read_all()
            kept = table if names is None else table.select([n for n in names if n in table.schema.names])
            # decoded: the dictionaries' index widths differ between batches
            plain = [
                f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in kept.schema
            ]
            tables.append(kept.cast(pa.schema(plain)))
        if not tables:
            return pa.table(
                {n: pa.array([], COLUMN_TYPES.get(n, pa.float64())) for n in names or COLUMN_TYPES}
            )
        return pa.concat_tables(tables, promote_options="default")

    def _window(
        self, query: Query, start: dt.date | None, end: dt.date | None, names: Sequence[str] | None
    ) -> pa.Table:
        """The records whose transaction day is in [start, end], in write order."""
        low = -(2**63) if start is None else _micros(start)
        high = 2**63 - 1 if end is None or end >= dt.date.max else _micros(end + dt.timedelta(days=1))
        if names is not None:  # the filter needs the times
            names = list(dict.fromkeys(["transaction_id", "tx_datetime", *names]))
        table = self._batches(query, "last_us >= ? AND first_us < ?", (low, high), names)
        micros = table["tx_datetime"].cast(pa.int64())
        return table.filter(pc.and_(pc.greater_equal(micros, low), pc.less(micros, high)))

    def read_predictions(
        self, start: dt.date | None = None, end: dt.date | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        _check_columns(columns or ())
        with self._reading() as query:
            if query is None:
                return pd.DataFrame()
            table = self._window(query, start, end, columns)
        order = _order(table)
        return _frame(
            table, order if columns is None else [n for n in order if n in {"transaction_id", *columns}]
        )

    def read_feedback(self, start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
        with self._reading() as query:
            if query is None:
                return pd.DataFrame(columns=LABEL_COLUMNS)
            names, order = ", ".join(LABEL_COLUMNS), self.LABEL_ID
            if start is None and end is None:
                rows = list(query(f"SELECT {names} FROM feedback ORDER BY {order}", ()))
            else:
                ids = self._window(query, start, end, ["transaction_id"])["transaction_id"]
                rows = list(
                    query(
                        f"SELECT {names} FROM feedback WHERE transaction_id {self.IDS_IN} ORDER BY {order}",
                        (self._ids(ids.to_pylist()),),
                    )
                )
        return _labels(rows)

    def read_prediction(
        self, transaction_id: str, tx_datetime: dt.datetime | None = None
    ) -> dict[str, Any] | None:
        where, args = "1 = 1", []
        if tx_datetime is not None:
            second = _micros(tx_datetime) // 1_000_000 * 1_000_000  # the whole second: sent again, a
            where, args = "first_us < ? AND last_us >= ?", [second + 1_000_000, second]  # time may differ
        with self._reading() as query:
            if query is None:
                return None
            for (blob,) in query(f"SELECT arrow FROM batches WHERE {where} ORDER BY id DESC", args):
                table = pa.ipc.open_stream(blob).read_all()
                found = table.filter(pc.equal(table["transaction_id"], transaction_id))
                if found.num_rows:
                    record: dict[str, Any] = found.slice(found.num_rows - 1).to_pylist()[0]
                    return record
        return None

    def read_labels(self, transaction_ids: Sequence[str]) -> dict[str, int]:
        with self._reading() as query:
            if query is None or not transaction_ids:
                return {}
            rows = query(
                f"SELECT transaction_id, tx_fraud FROM feedback WHERE transaction_id {self.IDS_IN}"
                f" ORDER BY {self.LABEL_ID}",
                (self._ids(transaction_ids),),
            )
            return {tid: int(fraud) for tid, fraud in rows}

    def read_after(self, cursor: Cursor) -> LogChanges:
        with self._reading() as query:
            if query is None:
                return LogChanges(pd.DataFrame(), pd.DataFrame(columns=LABEL_COLUMNS), cursor)
            ((last_batch,),) = query("SELECT COALESCE(MAX(id), ?) FROM batches", (cursor.batch,))
            table = self._batches(query, "id > ? AND id <= ?", (cursor.batch, last_batch), None)
            rows = list(
                query(
                    f"SELECT {self.LABEL_ID}, {', '.join(LABEL_COLUMNS)} FROM feedback"
                    f" WHERE {self.LABEL_ID} > ? ORDER BY {self.LABEL_ID}",
                    (cursor.label,),
                )
            )
        last_label = rows[-1][0] if rows else cursor.label
        return LogChanges(
            _frame(table, _order(table)), _labels([r[1:] for r in rows]), Cursor(last_batch, last_label)
        )


# -- SQLite ------------------------------------------------------------------------------------------


class SqlitePredictionLog(ArrowBatchLog):
    """:class:`PredictionLog` in one SQLite file (WAL): writes share one connection, reads open read-only."""

    def __init__(self, path: Path, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self.location = path
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SqlitePredictionLog({str(self.path)!r})"

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (waiting up to the busy timeout); a failure drops the connection.

        SQLite's own errors (a lock held past the timeout, a full disk) become :class:`PredictionLogError`:
        the store cannot take rows now.
        """
        with self._lock:
            try:
                conn = self._conn or self._connect()
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self.close()  # the next write starts afresh
                raise PredictionLogError(f"prediction log {self.path}: {exc}") from exc
            except BaseException:
                self.close()
                raise

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, self.busy_timeout_s, isolation_level=None, check_same_thread=False)
        self._conn = conn  # closed by _writing if what follows fails
        # a new database only: 16 KiB pages write a batch's blob about 20 % faster than 4 KiB and
        # cost a one-label feedback transaction little (64 KiB: faster still, but every small write pays)
        conn.execute("PRAGMA page_size=16384")
        if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            log.warning("prediction log %s: not in WAL mode", self.path)
        conn.execute("PRAGMA synchronous=NORMAL")
        if conn.execute("SELECT name FROM sqlite_master WHERE name = 'prediction_batches'").fetchall():
            raise PredictionLogError(f"{self.path} holds the earlier two-table layout: move it away")
        conn.executescript(SCHEMA_SQL)
        return conn

    def append_predictions(self, batch: pa.Table) -> int:
        if batch.num_rows == 0:
            return 0
        bounds = _time_bounds(batch)
        if batch.num_rows <= IN_MEMORY_BATCH_ROWS:  # a flush's few requests: serialised in one piece
            sink = pa.BufferOutputStream()
            _write_stream(sink, batch)
            with self._writing() as conn:
                sql = "INSERT INTO batches (first_us, last_us, rows, arrow) VALUES (?, ?, ?, ?)"
                conn.execute(sql, (*bounds, batch.num_rows, memoryview(sink.getvalue())))
            return batch.num_rows
        size = pa.MockOutputStream()
        _write_stream(size, batch)
        with self._writing() as conn:
            sql = "INSERT INTO batches (first_us, last_us, rows, arrow) VALUES (?, ?, ?, zeroblob(?))"
            row = conn.execute(sql, (*bounds, batch.num_rows, size.size())).lastrowid
            assert row is not None
            with conn.blobopen("batches", "arrow", row) as blob:  # streamed into the row: no copy in memory
                file = SimpleNamespace(write=blob.write, closed=False)  # what PythonFile needs of a file
                _write_stream(pa.PythonFile(file, mode="w"), batch)
        return batch.num_rows

    def append_feedback(self, labels: Iterable[Mapping[str, object]]) -> int:
        rows = _feedback_rows(labels)
        if rows:
            with self._writing() as conn:
                conn.executemany("INSERT INTO feedback VALUES (?, ?, ?, ?)", rows)
        return len(rows)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Query | None]:
        """A read-only connection in one read transaction (one snapshot); None when there is no log."""
        if not self.path.is_file():
            yield None
            return
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(
            sqlite3.connect(uri, self.busy_timeout_s, uri=True, isolation_level=None)
        ) as conn:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"batches", "feedback"} <= tables:
                yield None
                return
            conn.execute("BEGIN")
            yield conn.execute


# -- where a log is: a SQLite file or a PostgreSQL database --------------------------------------------

LogLocation = Path | str  # a SQLite file, or a postgresql:// URL (core.predlog_pg)
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def prediction_log_at(location: LogLocation) -> PredictionLog:
    """The log at ``location``: :class:`SqlitePredictionLog` for a path, a PostgreSQL log for a URL."""
    if isinstance(location, str) and location.startswith(POSTGRES_SCHEMES):
        from core.predlog_pg import PostgresPredictionLog  # psycopg2 only where a server is used

        return PostgresPredictionLog(location)
    return SqlitePredictionLog(Path(location))


def open_prediction_log(settings: Settings) -> PredictionLog:
    """The log the settings name: ``FRAUDOPS_PREDICTION_LOG_URL`` (team), else the SQLite file (solo)."""
    return prediction_log_at(settings.prediction_log_url or settings.prediction_log)


# -- the log at a location, one call at a time (tools, tests, monitoring) ---------------------------


def append_predictions(location: LogLocation, records: Iterable[Mapping[str, object]]) -> int:
    """Append records (dicts keyed by :func:`prediction_columns`) as one batch; returns rows written."""
    with contextlib.closing(prediction_log_at(location)) as store:
        return store.append_predictions(predictions_table(records))


def append_feedback(location: LogLocation, records: Iterable[Mapping[str, object]]) -> int:
    """Append fraud labels (:data:`FEEDBACK_COLUMNS`, ``received_on`` the ISO day they came in)."""
    with contextlib.closing(prediction_log_at(location)) as store:
        return store.append_feedback(records)


def read_predictions(
    location: LogLocation,
    start: dt.date | None = None,
    end: dt.date | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """:meth:`PredictionLog.read_predictions` of the log at ``location`` (an empty frame without one)."""
    with contextlib.closing(prediction_log_at(location)) as store:
        return store.read_predictions(start, end, columns)


def read_feedback(
    location: LogLocation, start: dt.date | None = None, end: dt.date | None = None
) -> pd.DataFrame:
    """:meth:`PredictionLog.read_feedback` of the log at ``location`` (an empty frame without one)."""
    with contextlib.closing(prediction_log_at(location)) as store:
        return store.read_feedback(start, end)


def append_unwritten(location: LogLocation, unwritten: Path) -> int:
    """Append the rows a writer saved at its close deadline (``<log>.unwritten-*.arrow``) to the log at
    ``location``; returns their count. Appending a file twice logs its rows twice in SQLite (the newest
    record wins) and once in PostgreSQL (a batch sent again is recognised)."""
    with pa.memory_map(str(unwritten)) as source:
        table = pa.ipc.open_file(source).read_all()
    with contextlib.closing(prediction_log_at(location)) as store:
        return store.append_predictions(table)


# -- the API's background writer ---------------------------------------------------------------------


def _as_code(location: LogLocation) -> str:
    """``location`` as Python source, for a command to paste."""
    return f"Path({str(location)!r})" if isinstance(location, Path) else repr(location)


EXIT_CHECK_S = 0.1  # how soon a waiting writer notices that the program ended without closing it


def _default(name: str) -> Any:
    """The default of the settings field ``name``: the writer's, so that one value lives in one place."""
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class WriterStatus:
    """What a :class:`PredictionWriter` reports at one instant (``/metrics``, ``/health/ready``)."""

    pending: int  # rows acknowledged, not yet committed: the backlog
    max_pending: int
    written: int
    failed_writes: int  # appends that failed since the writer started
    failing: bool  # the last append failed: submitting is refused
    last_error: str | None
    last_error_at: float | None  # epoch seconds

    @property
    def unavailable_reason(self) -> str | None:
        """Why the log takes no more scores now, or None when it does."""
        if self.failing:
            return (
                f"the prediction log fails to write ({self.last_error}); {self.pending} rows kept, retrying"
            )
        if self.pending >= self.max_pending:
            return f"the prediction log backlog is at its bound: {self.pending} rows wait (limit {self.max_pending})"
        return None


class PredictionWriter:
    """Appends the API's :class:`PredictionBatch` es to a :class:`PredictionLog` from one background thread,
    keeping the guarantee stated at the top of this module.

    Every ``flush_interval_s`` (or at :meth:`flush`) the thread appends what waits as one batch. A failed
    append is logged and retried every ``retry_interval_s`` with the same rows, and :meth:`submit`
    raises :class:`PredictionLogFailing` until one succeeds; while more than ``max_pending`` rows wait it
    raises :class:`PredictionLogFull`. :meth:`close` waits at most ``close_timeout_s`` and saves what is
    still unwritten beside ``spill_to`` (the log's file, when it has one).
    """

    def __init__(
        self,
        log: PredictionLog,
        features: Sequence[str],
        flush_interval_s: float = _default("log_flush_interval_s"),
        max_pending: int = _default("log_max_pending_rows"),
        retry_interval_s: float = _default("log_retry_interval_s"),
        close_timeout_s: float = _default("log_close_timeout_s"),
        spill_to: Path | None = None,
    ) -> None:
        if min(flush_interval_s, retry_interval_s) <= 0 or max_pending < 1 or close_timeout_s < 0:
            raise ValueError("the intervals must be positive, max_pending at least 1, close_timeout_s >= 0")
        self.log = log
        self.features = list(features)
        self.columns = prediction_columns(features)
        self.flush_interval_s = flush_interval_s
        self.retry_interval_s = retry_interval_s
        self.close_timeout_s = close_timeout_s
        self.max_pending = max_pending
        self.spill_to = spill_to
        self.last_error: Exception | None = None
        self._last_error_at: float | None = None
        self._cond = threading.Condition()  # its lock is reentrant: close() calls start() holding it
        self._queue: list[PredictionBatch] = []  # submitted, not yet taken by the thread
        self._taken: list[PredictionBatch] = []  # taken by the thread, not yet committed
        self._submitted = self._written = self._spilled = 0
        self._failures = self._failed_writes = 0  # failures in a row; failures in all
        self._urgent = self._failed = self._closing = self._stop = False
        self._deadline = float("inf")  # monotonic time when a closing writer gives up on the store
        self._thread: threading.Thread | None = None
        self._last_report = 0.0

    def submit(self, batch: PredictionBatch) -> None:
        """Queue a batch for the next append, never touching the disk (ValueError: wrong feature width).

        Raises :class:`PredictionLogFailing` while the last append failed and :class:`PredictionLogFull`
        when the backlog would pass ``max_pending``: a row refused was never acknowledged.
        """
        if batch.features.shape != (len(batch), len(self.features)):
            raise ValueError(f"a batch has {len(self.features)} feature columns ({', '.join(self.features)})")
        with self._cond:
            if self._closing:
                raise PredictionLogClosed(f"prediction log {self.log!r} is closed")
            waiting = self._submitted - self._written - self._spilled
            if self._failed:
                raise PredictionLogFailing(
                    f"prediction log {self.log!r}: writing fails ({self.last_error}); "
                    f"{waiting} rows kept and retried"
                )
            if waiting + len(batch) > self.max_pending:
                raise PredictionLogFull(
                    f"prediction log {self.log!r}: {waiting} rows wait to be written "
                    f"(limit {self.max_pending}); last error: {self.last_error!r}"
                )
            self._queue.append(batch)
            self._submitted += len(batch)

    @property
    def pending(self) -> int:
        """Rows submitted and not yet committed (nor saved at a close deadline)."""
        with self._cond:
            return self._submitted - self._written - self._spilled

    @property
    def written(self) -> int:
        """Rows committed by this writer."""
        with self._cond:
            return self._written

    @property
    def thread(self) -> threading.Thread | None:
        """The background thread, once started."""
        return self._thread

    def status(self) -> WriterStatus:
        """The backlog, its bound and the write errors, read at one instant."""
        with self._cond:
            error = self.last_error
            return WriterStatus(
                pending=self._submitted - self._written - self._spilled,
                max_pending=self.max_pending,
                written=self._written,
                failed_writes=self._failed_writes,
                failing=self._failed,
                last_error=None if error is None else f"{type(error).__name__}: {error}"[:200],
                last_error_at=self._last_error_at,
            )

    def start(self) -> PredictionWriter:
        """Start the background thread (once). It is no daemon: the program ending without :meth:`close`
        still writes what waits (within ``close_timeout_s``) before the process exits."""
        with self._cond:
            if self._closing:
                raise PredictionLogClosed(f"prediction log {self.log!r} is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=False)
                self._thread.start()
        return self

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every row submitted before this call is committed; False if ``timeout`` passed."""
        with self._cond:
            target = self._submitted
            if self._written >= target:
                return True
            thread = self._thread
            if thread is None or not thread.is_alive():
                raise PredictionLogError("the prediction-log writer is not running: call start()")
            self._urgent = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._written >= target or not thread.is_alive(), timeout)
            return self._written >= target

    def close(self, timeout: float | None = None) -> bool:
        """Commit everything submitted, waiting at most ``timeout`` (default ``close_timeout_s``) while
        writing fails, then stop; idempotent. Returns False when rows stayed unwritten: they are saved
        to a file and an error says where (see the module's guarantee)."""
        timeout = self.close_timeout_s if timeout is None else timeout
        with self._cond:
            if self._closing and self._thread is None:
                return self._submitted == self._written
            if self._thread is None and self._submitted > self._written + self._spilled:
                self.start()
            self._begin_closing(timeout)
            thread = self._thread
            if thread is not None:
                self._cond.wait_for(lambda: self._done() or not thread.is_alive(), timeout)
            self._stop = True
            self._cond.notify_all()
        self._save_unwritten()  # nothing to save when everything was written
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.retry_interval_s)  # a thread inside an append ends when that append returns
            if thread.is_alive():
                log.error("prediction log %r: the writer is still inside an append at close", self.log)
                return False
        with self._cond:
            self._thread = None
            done = self._submitted == self._written
        self.log.close()
        return done

    def __enter__(self) -> PredictionWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _begin_closing(self, timeout: float) -> None:
        """Refuse new rows and give the store until ``timeout`` from now (the first call's deadline holds)."""
        if not self._closing:
            self._closing = True
            self._deadline = time.monotonic() + timeout
        self._cond.notify_all()

    def _done(self) -> bool:
        return self._submitted == self._written + self._spilled

    def _run(self) -> None:
        try:
            while self._next():
                pass
        finally:
            with self._cond:  # wake flush() and close() even if the thread died
                self._cond.notify_all()

    def _next(self) -> bool:
        """Wait for the interval (or a flush), then append what waits; False when the thread should end."""
        with self._cond:
            if self._failed:  # wait a whole retry interval before retrying
                self._wait(lambda: self._stop, self.retry_interval_s)
            else:
                self._wait(lambda: self._stop or self._urgent or self._closing, self.flush_interval_s)
            if not self._closing and not threading.main_thread().is_alive():
                log.warning("prediction log %r: the program ended without closing its writer", self.log)
                self._begin_closing(self.close_timeout_s)
            if self._stop or time.monotonic() >= self._deadline:
                self._stop = True
                past_deadline = not self._done()
            else:
                past_deadline = False
                self._urgent = False
                retrying = bool(self._taken)  # a failed append is retried as it was: a store may
                if not retrying:  # have committed it unawares (core.predlog_pg)
                    self._taken, self._queue = self._queue, []
                taken = self._taken
                if not taken:
                    return not self._closing
        if past_deadline:  # saved here too: after the program ended, no close() will
            self._save_unwritten()
            return False
        if self._stop:
            return False
        ok = self._append(taken)  # outside the lock: submitting never waits for the disk
        with self._cond:
            self._failed = not ok
            if ok and self._taken is taken:  # (else close() saved these rows meanwhile: counted there)
                self._written += sum(len(b) for b in taken)
                self._taken = []
                self._urgent = retrying and bool(self._queue)  # rows queued behind a retry: at once
            self._cond.notify_all()
        return True

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait (holding the lock) until ``predicate``, ``timeout`` or the program's end, whichever first.

        Nothing notifies the end of the program: the wait looks every :data:`EXIT_CHECK_S`.
        """
        deadline = time.monotonic() + timeout
        main = threading.main_thread()
        while not predicate() and main.is_alive() and (left := deadline - time.monotonic()) > 0:
            self._cond.wait_for(predicate, min(left, EXIT_CHECK_S))

    def _append(self, batches: list[PredictionBatch]) -> bool:
        """One append of ``batches`` as one; False (rows kept) when it failed."""
        try:
            self.log.append_predictions(batches_table(batches, self.features))
        except Exception as exc:
            with self._cond:
                self.last_error, self._last_error_at = exc, time.time()
                self._failures += 1
                self._failed_writes += 1
            if self._failures == 1 or time.monotonic() - self._last_report >= 10.0:
                self._last_report = time.monotonic()
                log.error(
                    "prediction log %r: writing %d rows failed (attempt %d: %r); kept, retrying every %.2f s",
                    *(self.log, sum(len(b) for b in batches), self._failures, exc, self.retry_interval_s),
                )
            return False
        if self._failures:
            log.warning("prediction log %r: written again after %d failed attempts", self.log, self._failures)
            self._failures = 0
        return True

    def _save_unwritten(self) -> None:
        """Take the rows still unwritten and save them to a file; log how many, where and how to load them."""
        with self._cond:
            batches = [*self._taken, *self._queue]
            self._taken, self._queue = [], []
            rows = sum(len(b) for b in batches)
            self._spilled += rows
        if not rows:
            return
        table = batches_table(batches, self.features)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        errors = []
        for folder in self._spill_folders():
            path = (
                folder / f"{self.spill_to.name if self.spill_to else 'predictions'}.unwritten-{stamp}.arrow"
            )
            try:
                with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as file:
                    file.write_table(table)
            except OSError as exc:
                errors.append(f"{path}: {exc}")
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
                continue
            log.error(
                "prediction log %r: %d rows were not written by the close deadline; saved to %s. Append "
                'them once the log takes writes again: python -c "from pathlib import Path; from '
                "core.predlog import append_unwritten; print(append_unwritten(%s, Path('%s')))\"",
                *(self.log, rows, path, _as_code(self.log.location), path),
            )
            return
        log.error(
            "prediction log %r: %d rows were not written by the close deadline and are lost: saving "
            "them failed (%s)",
            *(self.log, rows, "; ".join(errors)),
        )

    def _spill_folders(self) -> list[Path]:
        """Where unwritten rows may go: beside the log, else in the system's temporary folder."""
        beside = [] if self.spill_to is None else [self.spill_to.parent]
        return list(dict.fromkeys([*beside, Path(tempfile.gettempdir())]))
