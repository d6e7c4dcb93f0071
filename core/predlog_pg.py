"""The prediction and feedback logs in PostgreSQL: the team setup's store behind :class:`~core.predlog.PredictionLog`.

Switched on by ``FRAUDOPS_PREDICTION_LOG_URL`` (a ``postgresql://`` URL, see
:func:`core.predlog.open_prediction_log`); every replica of the API writes to it and monitoring reads
it. The layout is SQLite's (:mod:`core.predlog`): a batch is one row holding one Arrow IPC stream, so
appending a batch takes three round trips whatever its size (lock, binary COPY of the row, commit),
a set of labels one (a multi-row INSERT); every read is shared with the SQLite log
(:class:`~core.predlog.ArrowBatchLog`). What differs, and why:

* Ids come from identity columns, taken under a table lock (``EXCLUSIVE``: reads go on, writers queue),
  so batches and labels commit in id order and a reader's cursor (:meth:`read_after`) never passes an
  id whose row commits later. SQLite gets the same from its single writer.
* A batch carries a digest of its bytes, unique: a batch sent again (a retry after a connection lost
  while its commit was under way, a saved file appended twice) is stored once.
* A commit is durable on the server before :meth:`append_predictions` returns (``synchronous_commit``
  on, PostgreSQL's default): the writer process may be killed at any time after, and a server crash
  keeps it too (SQLite in WAL with ``synchronous=NORMAL`` survives the process, not a power loss).
* A lost connection (the server restarted, the backend terminated, the network gone) fails the call
  with :class:`~core.predlog.PredictionLogError` naming the log and the cause; the next call connects
  again. The API's writer keeps and retries the rows (:class:`~core.predlog.PredictionWriter`), so an
  outage costs 503s, not predictions.

Writes share one connection, each append its own transaction; reads share another, each in one
read-only repeatable-read snapshot.
Readers never create the tables: a database without them reads as an empty log.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import struct
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg2
import psycopg2.extras
import pyarrow as pa

from core.predlog import (
    ArrowBatchLog,
    PredictionLogError,
    Query,
    _feedback_rows,
    _time_bounds,
    _write_stream,
)

APPLICATION_NAME = "fraudops-prediction-log"  # how the log's connections show in pg_stat_activity
# the tables, created on the first write; the advisory lock lets replicas that start together do it once
SCHEMA_SQL = """
SELECT pg_advisory_xact_lock(hashtext('fraudops prediction log schema'));
CREATE TABLE IF NOT EXISTS batches (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_us bigint NOT NULL,
    last_us bigint NOT NULL,
    rows integer NOT NULL,
    digest bytea NOT NULL UNIQUE,
    arrow bytea NOT NULL);
-- Arrow streams of floats hardly compress: stored as they are, a large batch appends 2-4x faster
ALTER TABLE batches ALTER COLUMN arrow SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS batches_last_us ON batches (last_us);
CREATE TABLE IF NOT EXISTS feedback (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id text NOT NULL,
    tx_fraud integer,
    tx_fraud_scenario integer,
    received_on text);
CREATE INDEX IF NOT EXISTS feedback_transaction_id ON feedback (transaction_id);
"""
TABLES_SQL = "SELECT to_regclass('batches'), to_regclass('feedback')"  # NULL: not there
# a batch: the lock and the digest's check in one message, the row in binary COPY (no escaping: a
# large batch appends about 3x faster than as an INSERT's text), then the commit
LOCK_BATCHES = """
BEGIN;
LOCK TABLE batches IN EXCLUSIVE MODE;
SELECT EXISTS (SELECT 1 FROM batches WHERE digest = %s)
"""
COPY_BATCH = "COPY batches (first_us, last_us, rows, digest, arrow) FROM STDIN (FORMAT binary)"
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # signature, flags, no extension
COPY_TRAILER = struct.pack("!h", -1)
# labels: the lock, every row and (autocommit) the commit in one message, an implicit transaction
INSERT_FEEDBACK = """
LOCK TABLE feedback IN EXCLUSIVE MODE;
INSERT INTO feedback (transaction_id, tx_fraud, tx_fraud_scenario, received_on) VALUES %s
"""


def without_password(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for logs and messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class PostgresPredictionLog(ArrowBatchLog):
    """:class:`~core.predlog.PredictionLog` in a PostgreSQL database (see the module's docstring)."""

    LABEL_ID = "id"
    IDS_IN = "= ANY(?)"

    def __init__(self, url: str, busy_timeout_s: float = 5.0, connect_timeout_s: int = 5) -> None:
        self.url = url
        self.location = without_password(url)
        self.busy_timeout_s = busy_timeout_s  # the longest wait for another writer's table lock
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()  # the write connection
        self._read_lock = threading.Lock()  # the read connection
        self._conn: Any = None
        self._reader: Any = None

    def __repr__(self) -> str:
        return f"PostgresPredictionLog({self.location!r})"

    @staticmethod
    def _ids(ids: Sequence[str]) -> Any:
        return list(ids)

    def _connect(self) -> Any:
        conn = psycopg2.connect(
            self.url,
            connect_timeout=self.connect_timeout_s,
            application_name=APPLICATION_NAME,
            options=f"-c lock_timeout={round(self.busy_timeout_s * 1000)}",
            keepalives=1,  # a server gone without a word is noticed, not waited for forever
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )
        conn.autocommit = True
        return conn

    def _abandon(self, conn: Any, exc: psycopg2.Error, what: str) -> PredictionLogError:
        """Close ``conn``, on which ``exc`` happened (None: connecting failed), so that the next call
        starts afresh; the error a caller sees: the log, what failed, PostgreSQL's words, what it means."""
        text = f"prediction log {self.location}: {what} failed: {_one_line(exc)}"
        if conn is None:
            text += " (cannot connect; the next call tries again)"
        elif conn.closed:  # not a statement's error (a lock timeout, a full disk): the link is gone
            text += " (connection lost; the next call connects again)"
        if conn is not None:
            with contextlib.suppress(psycopg2.Error):
                conn.close()
        return PredictionLogError(text)

    def _write(self, what: str, work: Callable[[Any], None]) -> None:
        """Call ``work`` with a cursor of the write connection.

        Any error drops the connection, so the next write starts on a fresh one, and is raised as
        :class:`PredictionLogError`: the store cannot take rows now."""
        with self._lock:
            try:
                if self._conn is None:
                    conn = self._conn = self._connect()
                    with conn.cursor() as cur:
                        # only when missing: CREATE INDEX IF NOT EXISTS would wait for writes in progress
                        cur.execute(TABLES_SQL)
                        if None in cur.fetchone():
                            cur.execute(SCHEMA_SQL)
                with self._conn.cursor() as cur:
                    work(cur)
            except psycopg2.Error as exc:
                conn, self._conn = self._conn, None
                raise self._abandon(conn, exc, what) from exc
            except BaseException:
                self._drop_writer()
                raise

    def _drop_writer(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()
            self._conn = None

    def append_predictions(self, batch: pa.Table) -> int:
        if batch.num_rows == 0:
            return 0
        sink = pa.BufferOutputStream()
        _write_stream(sink, batch)
        stream = memoryview(sink.getvalue())
        digest = hashlib.blake2b(stream, digest_size=16).digest()
        first, last = _time_bounds(batch)
        row = struct.pack("!hiqiqiii16si", 5, 8, first, 8, last, 4, batch.num_rows, 16, digest, len(stream))
        copy = io.BytesIO(b"".join([COPY_HEADER, row, stream, COPY_TRAILER]))

        def store(cur: Any) -> None:  # closing the connection on an error rolls the transaction back
            cur.execute(LOCK_BATCHES, (digest,))
            if not cur.fetchone()[0]:  # else sent again: stored already
                cur.copy_expert(COPY_BATCH, copy, size=1 << 20)
            cur.execute("COMMIT")

        self._write(f"appending {batch.num_rows} predictions", store)
        return batch.num_rows

    def append_feedback(self, labels: Iterable[Mapping[str, object]]) -> int:
        rows = _feedback_rows(labels)
        if rows:  # every row in one statement: one round trip
            self._write(
                f"appending {len(rows)} labels",
                lambda cur: psycopg2.extras.execute_values(cur, INSERT_FEEDBACK, rows, page_size=len(rows)),
            )
        return len(rows)

    def close(self) -> None:
        with self._lock:
            self._drop_writer()
        with self._read_lock:
            if self._reader is not None:
                with contextlib.suppress(psycopg2.Error):
                    self._reader.close()
                self._reader = None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Query | None]:
        """One read-only repeatable-read transaction on the read connection; None without the tables.

        An error drops the connection and is raised as :class:`PredictionLogError`."""
        with self._read_lock:
            try:
                if self._reader is None:
                    self._reader = self._connect()
                    self._reader.set_session(
                        isolation_level="REPEATABLE READ", readonly=True, autocommit=False
                    )
                with self._reader, self._reader.cursor() as cur:  # commits (ends the snapshot) on leaving

                    def query(sql: str, args: Sequence[Any]) -> Iterable[tuple[Any, ...]]:
                        cur.execute(sql.replace("?", "%s"), args)  # the shared SQL's placeholders
                        return cur

                    tables = query(TABLES_SQL, ())
                    yield None if None in next(iter(tables)) else query
            except psycopg2.Error as exc:
                conn, self._reader = self._reader, None
                raise self._abandon(conn, exc, "reading") from exc
