"""The prediction log: its stores, the API's batched writer, the helpers and the read-only readers.

The tests that take ``db`` state the contract of every store behind :class:`core.predlog.PredictionLog`
and run against each: the SQLite file and a throwaway PostgreSQL database (``postgres`` marker). The
others test the SQLite store's own ways (WAL, its locks and errors) and the writer around it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from core.predlog import (
    Cursor,
    LogLocation,
    PredictionBatch,
    PredictionLogClosed,
    PredictionLogError,
    PredictionLogFailing,
    PredictionLogFull,
    PredictionWriter,
    SqlitePredictionLog,
    append_feedback,
    append_predictions,
    append_unwritten,
    prediction_columns,
    prediction_log_at,
    read_feedback,
    read_predictions,
)
from core.schemas import LABEL_COLUMNS
from core.settings import PREDICTION_LOSS_WINDOW_S, Settings
from tests.conftest import connect_postgres

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["a", "b"]
COUNT_SQL = "SELECT COALESCE(SUM(rows), 0) FROM batches"  # records stored, rescores included
DAY = dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)


def row(i: int, features: int = len(FEATURES), day: int = 5) -> tuple[Any, ...]:
    """Row ``i`` of the log in the writer's column order; values derive from ``i``."""
    when = DAY.replace(day=day) + dt.timedelta(seconds=i, microseconds=i % 1000)
    values = [i / (k + 2) for k in range(features)]
    return (
        f"T{i}",
        when.isoformat(timespec="microseconds"),
        i,
        i + 1,
        float(i) + 0.25,
        *values,
        (i % 100) / 100,
        i % 2,
        0.5,
        "3",
        "2026-01-05T10:00:00.000000+00:00",
    )


def batch(rows: Sequence[tuple[Any, ...]], features: int = len(FEATURES)) -> PredictionBatch:
    """Row tuples of one request (one threshold, version and scoring time) as the API's batch."""
    ids, times, customers, terminals, amounts = (list(c) for c in zip(*(r[:5] for r in rows), strict=True))
    scores = [r[5 + features :] for r in rows]
    return PredictionBatch(
        *(ids, np.array([pd.Timestamp(t).value // 1000 for t in times]), customers, terminals, amounts),
        np.array([r[5 : 5 + features] for r in rows], dtype=float).reshape(len(rows), features),
        np.array([s[0] for s in scores]),
        np.array([bool(s[1]) for s in scores]),
        *scores[0][2:],
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> LogLocation:
    """Where a fresh log goes: a SQLite file in a folder not made yet, or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "stores" / "predictions.db"
    url: str = request.getfixturevalue("postgres_database")
    return url


def stored_tables(db: LogLocation) -> bool:
    """Whether the log's tables exist (a reader must not have made them)."""
    if isinstance(db, Path):
        return db.exists()
    with contextlib.closing(connect_postgres(db.rsplit("/", 1)[1])) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('batches') IS NOT NULL OR to_regclass('feedback') IS NOT NULL")
        return bool(cur.fetchone()[0])


def count_records(db: LogLocation) -> int:
    """Records stored, each rescore and each batch sent again counted, read past the store's own code."""
    if isinstance(db, Path):
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return int(conn.execute(COUNT_SQL).fetchone()[0])
    with contextlib.closing(connect_postgres(db.rsplit("/", 1)[1])) as conn, conn.cursor() as cur:
        cur.execute(COUNT_SQL)
        return int(cur.fetchone()[0])


def writer(db: LogLocation, **kwargs: Any) -> PredictionWriter:
    return PredictionWriter(prediction_log_at(db), FEATURES, **{"flush_interval_s": 0.01, **kwargs})


def test_rows_submitted_from_several_threads_are_read_back_once(db: LogLocation) -> None:
    log = writer(db).start()
    assert log.columns == prediction_columns(FEATURES) and log.columns[-1] == "scored_at"

    def client(first: int) -> None:
        for start in range(first, first + 500, 10):
            log.submit(batch([row(i) for i in range(start, start + 10)]))

    clients = [threading.Thread(target=client, args=(n * 500,)) for n in range(4)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    log.close()
    log.close()  # idempotent
    assert (log.written, log.pending) == (2000, 0)

    frame = read_predictions(db)
    assert list(frame.columns) == prediction_columns(FEATURES)
    assert len(frame) == 2000 and frame["transaction_id"].is_unique
    got = frame.set_index("transaction_id").loc["T1234"]
    expected = dict(zip(log.columns, row(1234), strict=True))
    assert got["tx_datetime"] == pd.Timestamp(expected["tx_datetime"])
    assert got["tx_datetime"].microsecond == 234 and str(got["tx_datetime"].tz) == "UTC"
    for column in ["customer_id", "terminal_id", "tx_amount", "f_a", "f_b", "fraud_probability", "threshold"]:
        assert got[column] == expected[column], column
    assert got["is_fraud"] == bool(expected["is_fraud"])
    assert (got["model_version"], got["scored_at"]) == ("3", expected["scored_at"])
    assert frame["customer_id"].dtype == np.int64 and frame["is_fraud"].dtype == bool


def test_flush_returns_once_everything_submitted_before_is_committed(db: LogLocation) -> None:
    log = writer(db, flush_interval_s=30.0)  # only flush() makes it write within the test
    log.submit(batch([row(1)]))
    with pytest.raises(PredictionLogError, match="start"):
        log.flush()
    log.start()
    assert not stored_tables(db)  # submit never touches the store
    log.submit(batch([row(2), row(3)]))
    assert log.pending == 3
    assert log.flush(timeout=5)
    assert (log.pending, log.written) == (0, 3)
    assert sorted(read_predictions(db)["transaction_id"]) == ["T1", "T2", "T3"]
    assert log.flush(timeout=0)  # nothing waiting
    log.close()
    with pytest.raises(PredictionLogClosed):
        log.submit(batch([row(4)]))


def test_database_is_in_wal_mode_with_a_window_index(tmp_path: Path) -> None:
    db = tmp_path / "predictions.db"
    with writer(db) as log:
        log.submit(batch([row(1)]))
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        batches = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM batches WHERE last_us >= ? AND first_us < ?", (0, 1)
        ).fetchall()
        labels = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM feedback WHERE transaction_id = 'T1'"
        ).fetchall()
    assert "batches_last_us" in str(batches)
    assert "feedback_transaction_id" in str(labels)


def test_a_window_is_the_utc_transaction_days(db: LogLocation) -> None:
    base = {"customer_id": 1, "terminal_id": 2, "tx_amount": 3.0, "fraud_probability": 0.1}
    records = [
        {**base, "transaction_id": "late-4th", "tx_datetime": "2026-01-04T23:59:59.999999+00:00"},
        {**base, "transaction_id": "utc-5th", "tx_datetime": "2026-01-05T23:30:00-02:00"},  # 6th in UTC
        {**base, "transaction_id": "naive-5th", "tx_datetime": pd.Timestamp("2026-01-05 00:00")},
        {**base, "transaction_id": "6th", "tx_datetime": dt.datetime(2026, 1, 6, 12, tzinfo=dt.UTC)},
    ]
    append_predictions(db, records)
    ids = read_predictions(db, dt.date(2026, 1, 5), dt.date(2026, 1, 5))["transaction_id"]
    assert ids.tolist() == ["naive-5th"]
    assert sorted(read_predictions(db, start=dt.date(2026, 1, 6))["transaction_id"]) == ["6th", "utc-5th"]
    assert read_predictions(db, end=dt.date(2026, 1, 4))["transaction_id"].tolist() == ["late-4th"]
    assert len(read_predictions(db)) == 4


def test_readers_read_while_the_writer_writes(tmp_path: Path) -> None:
    db = tmp_path / "predictions.db"
    log = writer(db, flush_interval_s=0.005).start()
    log.submit(batch([row(0)]))
    assert log.flush(timeout=5)
    stop = threading.Event()

    def produce() -> None:
        i = 1
        while not stop.is_set():
            log.submit(batch([row(n) for n in range(i, i + 20)]))
            i += 20
            time.sleep(0.002)

    producer = threading.Thread(target=produce)
    producer.start()
    counts = []
    try:
        # a reader in the middle of a read transaction does not hold the writer up either
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as held:
            held.execute("BEGIN")
            snapshot = held.execute(COUNT_SQL).fetchone()[0]
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                counts.append(len(read_predictions(db)))
            assert held.execute(COUNT_SQL).fetchone()[0] == snapshot
    finally:
        stop.set()
        producer.join()
    log.close()
    assert counts == sorted(counts) and counts[-1] > counts[0]
    assert len(read_predictions(db)) == log.written == log.pending + log.written


@contextlib.contextmanager
def read_only_store(store: SqlitePredictionLog) -> Iterator[None]:
    """A store that takes no writes until the block ends: SQLite itself answers "attempt to write a
    readonly database" (``PRAGMA query_only`` on every connection the store opens; a full disk fails
    the same way, on the same path)."""
    connect = store._connect

    def connect_read_only() -> sqlite3.Connection:
        conn = connect()
        conn.execute("PRAGMA query_only = 1")
        return conn

    store.close()  # the next write connects through connect_read_only
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "_connect", connect_read_only)
        yield
    store.close()  # the next write connects as usual: the store recovered


def wait_until_failing(log: PredictionWriter) -> None:
    """Until the writer has seen a write fail (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + 10
    while not log.status().failing:
        assert time.monotonic() < deadline, "no write failed"
        time.sleep(0.005)


def test_a_write_error_stops_acknowledging_and_loses_nothing_once_the_store_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Once an append fails, submit refuses (the API answers 503) until one succeeds; rows queued
    before are kept, retried and written once."""
    db = tmp_path / "predictions.db"
    log = writer(db, retry_interval_s=0.01).start()
    log.submit(batch([row(0)]))
    assert log.flush(timeout=5)
    with read_only_store(log.log), caplog.at_level(logging.ERROR, logger="core.predlog"):  # type: ignore[arg-type]
        log.submit(batch([row(i) for i in range(1, 101)]))  # acknowledged before the failure is known
        wait_until_failing(log)
        with pytest.raises(PredictionLogFailing, match=r"readonly database.*; 100 rows kept"):
            log.submit(batch([row(101)]))
        status = log.status()
        assert (status.pending, status.failing) == (100, True) and status.failed_writes >= 1
        assert "readonly database" in str(status.last_error) and "kept, retrying" in caplog.text
    assert log.flush(timeout=5)
    assert not log.status().failing
    log.submit(batch([row(i) for i in range(102, 111)]))  # acknowledged again
    log.close()
    ids = sorted(read_predictions(db)["transaction_id"])
    assert ids == sorted(f"T{i}" for i in [*range(101), *range(102, 111)])
    assert count_records(db) == 110  # each row once


def test_a_write_held_up_by_a_lock_also_stops_acknowledging(tmp_path: Path) -> None:
    db = tmp_path / "predictions.db"
    log = PredictionWriter(
        SqlitePredictionLog(db, 0.01), FEATURES, flush_interval_s=0.01, retry_interval_s=0.01
    )
    log.start()
    log.submit(batch([row(0)]))
    assert log.flush(timeout=5)
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
        log.submit(batch([row(i) for i in range(1, 11)]))
        wait_until_failing(log)
        with pytest.raises(PredictionLogFailing, match="locked"):
            log.submit(batch([row(11)]))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert log.flush(timeout=5)
    log.close()
    assert sorted(read_predictions(db)["transaction_id"]) == sorted(f"T{i}" for i in range(11))


def test_close_under_a_store_that_never_recovers_ends_by_its_deadline_and_saves_the_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk cannot hang a clean stop: at the deadline the rows go to a file beside the log, and the
    error says how many, where and how to append them."""
    db = tmp_path / "predictions.db"
    log = writer(db, retry_interval_s=0.01, close_timeout_s=0.2, spill_to=db).start()
    log.submit(batch([row(0)]))
    assert log.flush(timeout=5)
    with read_only_store(log.log), caplog.at_level(logging.ERROR, logger="core.predlog"):  # type: ignore[arg-type]
        log.submit(batch([row(i) for i in range(1, 31)]))
        closing = threading.Thread(target=log.close)  # the default deadline: close_timeout_s
        closing.start()
        closing.join(timeout=30)  # a guard against a hang, not a timing assertion
        assert not closing.is_alive(), "close() did not return"
    (saved,) = tmp_path.glob("predictions.db.unwritten-*.arrow")
    assert "30 rows were not written by the close deadline; saved to " + str(saved) in caplog.text
    assert "append_unwritten" in caplog.text
    assert (log.pending, log.written) == (0, 1)
    assert sorted(read_predictions(db)["transaction_id"]) == ["T0"]
    assert append_unwritten(db, saved) == 30  # once the store takes writes again
    frame = read_predictions(db).set_index("transaction_id")
    assert sorted(frame.index) == sorted(f"T{i}" for i in range(31))
    assert frame.loc["T7", "f_b"] == row(7)[6] and list(frame.columns) == prediction_columns(FEATURES)[1:]


def test_rows_the_log_folder_refuses_are_saved_in_the_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "predictions.db"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    log = writer(db, retry_interval_s=0.01, spill_to=tmp_path / "not-a-folder" / "predictions.db")
    (tmp_path / "not-a-folder").write_text("a file where the log's folder should be")
    with read_only_store(log.log), caplog.at_level(logging.ERROR, logger="core.predlog"):  # type: ignore[arg-type]
        log.submit(batch([row(1), row(2)]))
        assert not log.close(timeout=0.05)
    (saved,) = (tmp_path / "tmp").glob("predictions.db.unwritten-*.arrow")
    assert f"2 rows were not written by the close deadline; saved to {saved}" in caplog.text
    assert append_unwritten(db, saved) == 2


def test_the_writer_thread_is_no_daemon_and_writes_what_waits_when_the_program_ends(tmp_path: Path) -> None:
    """A program that ends without close() still has its acknowledged rows written before it exits."""
    db = tmp_path / "predictions.db"
    log = writer(db).start()
    assert log.thread is not None and not log.thread.daemon
    log.close()
    program = f"""
import numpy as np
from pathlib import Path
from core.predlog import PredictionBatch, PredictionWriter, SqlitePredictionLog
log = PredictionWriter(SqlitePredictionLog(Path({str(db)!r})), ["a"], flush_interval_s=30.0).start()
ids = [f"exit-{{i}}" for i in range(5)]
log.submit(PredictionBatch(ids, np.arange(5) * 10**6, [1] * 5, [2] * 5, [3.0] * 5, np.zeros((5, 1)),
                           np.zeros(5), np.zeros(5, bool), 0.5, "1", "2026-01-05T10:00:00+00:00"))
"""  # ends at once, 30 s before the writer's next append
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "the program ended without closing its writer" in done.stderr
    assert sorted(read_predictions(db)["transaction_id"]) == [f"exit-{i}" for i in range(5)]


KILLED_WRITER = """
import sys
from core.predlog import prediction_log_at, predictions_table
store = prediction_log_at(sys.argv[1])
for k in range(100_000):
    store.append_predictions(predictions_table([{"transaction_id": f"K{k}", "tx_datetime": "2026-01-05"}]))
    print(k, flush=True)  # acknowledged: the append returned
"""


def test_what_an_append_acknowledged_survives_a_sigkill_of_the_writer(db: LogLocation) -> None:
    """The store's half of the guarantee (core.predlog): once an append returns, its rows are the
    store's, whatever happens to the writing process next."""
    writing = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert writing.stdout is not None
    printed = []
    try:
        for line in writing.stdout:  # killed mid-stream, an append or two after the 20th
            printed.append(line)
            if len(printed) > 20:
                break
    finally:
        writing.kill()  # SIGKILL
        printed.append(writing.communicate(timeout=60)[0])
    acknowledged = {f"K{k}" for k in "".join(printed).split()}
    assert len(acknowledged) > 20, f"the writer ended before it was killed: {writing.returncode}"
    stored = set(read_predictions(db)["transaction_id"])
    assert acknowledged <= stored
    assert len(stored) <= len(acknowledged) + 1  # at most the append in flight, never acknowledged
    assert count_records(db) == len(stored)  # each once


def test_a_flush_interval_that_leaves_no_room_for_the_write_is_refused() -> None:
    assert Settings(log_flush_interval_s=0.05).log_flush_interval_s < PREDICTION_LOSS_WINDOW_S
    with pytest.raises(ValidationError, match=r"less than 0\.1"):
        Settings(log_flush_interval_s=0.1)


def test_submit_refuses_rows_beyond_max_pending(db: LogLocation) -> None:
    log = writer(db, max_pending=5)  # not started: nothing leaves the queue
    log.submit(batch([row(i) for i in range(4)]))
    with pytest.raises(PredictionLogFull, match="5"):
        log.submit(batch([row(4), row(5)]))
    log.submit(batch([row(4)]))
    with pytest.raises(PredictionLogFull):
        log.submit(batch([row(5)]))
    with pytest.raises(ValueError, match="2 feature columns"):
        log.submit(batch([row(6, features=1)], features=1))
    assert log.pending == 5
    assert log.close(timeout=5)  # starts the thread to write what waits
    assert sorted(read_predictions(db)["transaction_id"]) == [f"T{i}" for i in range(5)]


def test_numpy_values_are_stored_as_numbers(db: LogLocation) -> None:
    values = list(row(7))
    values[2], values[5], values[-4] = np.int64(7), np.float32(1.5), np.bool_(True)
    append_predictions(db, [dict(zip(prediction_columns(FEATURES), values, strict=True))])
    got = read_predictions(db).iloc[0]
    assert (got["customer_id"], got["f_a"], got["is_fraud"]) == (7, 1.5, True)


def test_new_feature_columns_are_added_and_nothing_is_dropped(db: LogLocation) -> None:
    with PredictionWriter(prediction_log_at(db), ["a"], flush_interval_s=0.01) as old:
        old.submit(batch([row(1, features=1), row(2, features=1)], features=1))
    with PredictionWriter(prediction_log_at(db), ["a", "b"], flush_interval_s=0.01) as new:
        new.submit(batch([row(3)]))
    record = dict(zip(prediction_columns(["a", "c"]), row(4), strict=True))
    append_predictions(db, [record])
    frame = read_predictions(db).set_index("transaction_id")
    assert list(frame.columns[4:7]) == ["f_a", "f_b", "f_c"]
    assert len(frame) == 4
    assert frame.loc["T1", "f_a"] == 0.5 and np.isnan(frame.loc["T1", "f_b"])
    assert frame.loc["T3", "f_b"] == 1.0 and np.isnan(frame.loc["T3", "f_c"])
    assert frame.loc["T4", "f_c"] == 4 / 3


def test_readers_never_create_the_database(tmp_path: Path) -> None:
    db = tmp_path / "stores" / "predictions.db"
    assert read_predictions(db).empty
    assert read_predictions(db, dt.date(2026, 1, 1), dt.date(2026, 1, 7)).empty
    feedback = read_feedback(db)
    assert feedback.empty and list(feedback.columns) == LABEL_COLUMNS
    assert not (tmp_path / "stores").exists()
    db.parent.mkdir()
    sqlite3.connect(db).close()  # a database without the tables
    assert read_predictions(db).empty and read_feedback(db).empty


def test_the_newest_label_wins(db: LogLocation) -> None:
    append_feedback(
        db, [{"transaction_id": "T1", "tx_fraud": 0, "tx_fraud_scenario": 0, "received_on": "2026-01-10"}]
    )
    append_feedback(
        db,
        [
            {
                "transaction_id": "T1",
                "tx_fraud": 1,
                "tx_fraud_scenario": 3,
                "received_on": dt.date(2026, 1, 11),
            }
        ],
    )
    frame = read_feedback(db)
    assert frame.to_dict("records") == [{"transaction_id": "T1", "tx_fraud": 1, "tx_fraud_scenario": 3}]
    with pytest.raises(ValueError, match="not a column"):
        append_feedback(db, [{"transaction_id": "T2", "tx_fraud": 1, "comment": "x"}])


def test_times_in_another_form_read_as_pandas_reads_them(db: LogLocation) -> None:
    append_predictions(db, [dict(zip(prediction_columns(FEATURES), row(1), strict=True))])
    stamps = ["2026-01-05T11:00:00.000001+01:00", "2026-01-05T10:00:00.5"]  # an offset; no offset at all
    append_predictions(db, [{"transaction_id": "T2", "tx_datetime": stamps[0]}])
    append_predictions(db, [{"transaction_id": "T3", "tx_datetime": stamps[1]}])
    frame = read_predictions(db).set_index("transaction_id")
    expected = pd.to_datetime(pd.Series(stamps), utc=True, format="ISO8601")
    assert frame.loc[["T2", "T3"], "tx_datetime"].tolist() == expected.tolist()
    assert str(frame["tx_datetime"].dtype) == "datetime64[us, UTC]"
    with pytest.raises(ValueError, match="yesterday"):
        append_predictions(db, [{"transaction_id": "T4", "tx_datetime": "yesterday"}])
    assert count_records(db) == 3


def test_a_read_of_some_columns_gives_those_of_the_full_read(db: LogLocation) -> None:
    with writer(db) as log:
        log.submit(batch([row(i, day=5 + i % 3) for i in range(30)]))
        log.submit(batch([row(4, day=9)]))  # a rescore: the newest wins in both reads
    full = read_predictions(db, dt.date(2026, 1, 6), dt.date(2026, 1, 9))
    some = read_predictions(db, dt.date(2026, 1, 6), dt.date(2026, 1, 9), columns=["f_b", "tx_datetime"])
    assert list(some.columns) == ["transaction_id", "tx_datetime", "f_b"]
    pd.testing.assert_frame_equal(some, full[list(some.columns)])
    assert read_predictions(db, columns=["customer_id"]).columns.tolist() == ["transaction_id", "customer_id"]
    with pytest.raises(ValueError, match="not a column"):
        read_predictions(db, columns=["fraud"])


def label(tid: str, fraud: int, received_on: str) -> dict[str, object]:
    return {"transaction_id": tid, "tx_fraud": fraud, "tx_fraud_scenario": fraud, "received_on": received_on}


def test_feedback_of_a_window_is_chosen_by_transaction_time_not_arrival(db: LogLocation) -> None:
    times = {"T1": "2026-01-05T10:00:00Z", "T2": "2026-01-06T23:59:59Z", "T3": "2026-01-07T00:00:00Z"}
    append_predictions(db, [{"transaction_id": tid, "tx_datetime": t} for tid, t in times.items()])
    labels = [label("T1", 0, "2026-01-20"), label("T3", 1, "2026-01-06"), label("X", 1, "2026-01-06")]
    append_feedback(db, [*labels, label("T2", 0, "2026-01-13")])
    append_feedback(db, [label("T2", 1, "2026-01-14")])  # a correction: the newest label wins
    window = read_feedback(db, dt.date(2026, 1, 5), dt.date(2026, 1, 6))
    assert window.to_dict("records") == [
        {"transaction_id": "T1", "tx_fraud": 0, "tx_fraud_scenario": 0},
        {"transaction_id": "T2", "tx_fraud": 1, "tx_fraud_scenario": 1},
    ]
    assert read_feedback(db, start=dt.date(2026, 1, 7))["transaction_id"].tolist() == ["T3"]
    assert sorted(read_feedback(db)["transaction_id"]) == ["T1", "T2", "T3", "X"]  # no range: every label
    assert read_feedback(db, dt.date(2026, 2, 1), dt.date(2026, 2, 7)).empty


def test_a_transaction_is_looked_up_by_id_newest_record_first(db: LogLocation) -> None:
    store = prediction_log_at(db)
    assert store.read_prediction("T2") is None and not stored_tables(db)
    with writer(db) as log:
        log.submit(batch([row(i) for i in range(1, 6)]))
    rescored = {**dict(zip(prediction_columns(FEATURES), row(2), strict=True)), "fraud_probability": 0.99}
    append_predictions(db, [rescored, dict(zip(prediction_columns(FEATURES), row(9, day=20), strict=True))])
    got = store.read_prediction("T2")
    assert got is not None and got["fraud_probability"] == 0.99 and got["f_b"] == 2 / 3
    assert got["tx_datetime"] == dt.datetime(2026, 1, 5, 10, 0, 2, 2, tzinfo=dt.UTC)
    first = store.read_prediction("T4")
    assert first is not None and (first["fraud_probability"], first["is_fraud"]) == (0.04, False)
    assert store.read_prediction("T2", tx_datetime=got["tx_datetime"]) == got  # the time narrows the search
    assert store.read_prediction("T2", tx_datetime=dt.datetime(2026, 1, 21, tzinfo=dt.UTC)) is None
    assert store.read_prediction("T7") is None


def test_what_was_logged_after_a_cursor_is_read_once(db: LogLocation) -> None:
    store = prediction_log_at(db)
    nothing = store.read_after(Cursor())
    assert nothing.predictions.empty and nothing.feedback.empty and nothing.cursor == Cursor()
    append_predictions(db, [dict(zip(prediction_columns(FEATURES), row(i), strict=True)) for i in (1, 2)])
    append_feedback(db, [label("T1", 1, "2026-01-12")])
    first = store.read_after(Cursor())
    assert first.predictions["transaction_id"].tolist() == ["T1", "T2"]
    assert list(first.predictions.columns) == prediction_columns(FEATURES)
    assert first.feedback["transaction_id"].tolist() == ["T1"] and first.cursor != Cursor()
    again = store.read_after(first.cursor)
    assert again.predictions.empty and again.feedback.empty and again.cursor == first.cursor
    with writer(db) as log:
        log.submit(batch([row(3), row(1)]))  # T1 rescored
    append_feedback(db, [label("T2", 0, "2026-01-13"), label("T2", 1, "2026-01-14")])
    later = store.read_after(first.cursor)
    assert later.predictions["transaction_id"].tolist() == ["T3", "T1"]
    assert later.feedback.to_dict("records") == [
        {"transaction_id": "T2", "tx_fraud": 1, "tx_fraud_scenario": 1}
    ]
    assert store.read_after(later.cursor).predictions.empty
    everything = store.read_after(Cursor())
    assert sorted(everything.predictions["transaction_id"]) == ["T1", "T2", "T3"]
    assert len(everything.feedback) == 2


def test_a_batch_past_the_in_memory_size_is_streamed_into_its_row_and_reads_back_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("core.predlog.IN_MEMORY_BATCH_ROWS", 3)  # 2 rows in memory, 5 streamed
    small, large = [row(i) for i in range(2)], [row(i) for i in range(10, 15)]
    with PredictionWriter(SqlitePredictionLog(tmp_path / "p.db"), FEATURES, flush_interval_s=10) as log:
        for rows in (small, large):
            log.submit(batch(rows))
            assert log.flush(timeout=5)
    frame = read_predictions(tmp_path / "p.db")
    with contextlib.closing(sqlite3.connect(tmp_path / "p.db")) as conn:
        stored = conn.execute(
            "SELECT rows, first_us, last_us, length(arrow) > 0 FROM batches ORDER BY id"
        ).fetchall()
    micros = [pd.Timestamp(r[1]).value // 1000 for r in small + large]
    assert stored == [(2, micros[0], micros[1], 1), (5, micros[2], micros[6], 1)]
    assert frame["transaction_id"].tolist() == [r[0] for r in small + large]
    assert frame["f_b"].tolist() == [r[6] for r in small + large]
    assert frame["scored_at"].tolist() == [r[-1] for r in small + large]
