"""Prediction-log speed, before and after the one-layout rewrite, measured in one run.

``python -m benchmarks.predlog`` (part of ``make bench``). Each side runs this file in a process of its
own whose ``PYTHONPATH`` is that side's tree: "before" a git worktree of the commit before the
rewrite (:data:`BEFORE`, made by :func:`benchmarks.project.worktree`), "after" this working tree. A small
adapter per side calls that side's API; the measurements are the same:

- the API's path: :class:`~core.predlog.PredictionWriter`, a batch built and submitted per request
  (1-row and 1,000-row requests), timed from the first submit until ``close()`` has committed all;
  also the submit alone, the cost a request pays;
- the synchronous append of records (dicts), 10,000 a call; with ``--url``, also 200 appends of a
  1,000-row batch, a commit each (the writer's appends under steady traffic: its 1,000-row figure
  above is one append of all 200,000 rows, since submitting outruns the 50 ms flush);
- reads from a log of six weeks of 50,000 transactions with 15 features (written as the API writes,
  one flush a day) and all their labels: a week of predictions, and the labels of a week's
  transactions (before: ``read_feedback`` had no window, so monitoring read every label).

Each figure is the median of ``--rounds`` rounds, each on a fresh database.

``python -m benchmarks.predlog --url postgresql://USER@HOST:PORT/DB [ROUNDS]`` measures the same figures
for this tree's two stores instead: the SQLite file and PostgreSQL (team mode), each round in a
throwaway database created beside ``DB`` and dropped after it (the user needs CREATEDB; ``DB`` itself
is never written).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "263e51c"
FEATURES = [f"feature_{k:02d}" for k in range(15)]
START = dt.date(2026, 1, 5)
WEEKS, PER_WEEK = 6, 50_000


def requests(n: int, size: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` scored requests of ``size`` transactions as columns, in time order."""
    rng = np.random.default_rng(seed)
    first_us = int(dt.datetime.combine(START, dt.time(), dt.UTC).timestamp() * 1_000_000)
    step = 7 * WEEKS * 86_400_000_000 // max(n * size, 1)
    out = []
    for k in range(n):
        ids = [f"T{k * size + i}" for i in range(size)]
        probability = rng.random(size)
        out.append(
            {
                "ids": ids,
                "tx_us": first_us + step * np.arange(k * size, (k + 1) * size, dtype=np.int64),
                "customers": rng.integers(0, 5000, size).tolist(),
                "terminals": rng.integers(0, 10000, size).tolist(),
                "amounts": rng.gamma(2, 30, size).round(2).tolist(),
                "features": rng.random((size, len(FEATURES))).astype(np.float32),
                "probability": probability,
                "flags": probability >= 0.5,
            }
        )
    return out


class Side:
    """One side's API behind the same calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.predlog: Any = importlib.import_module("core.predlog")  # that side's: typed as neither

    def writer(self, path: Any) -> Any:
        if self.name == "before":
            return self.predlog.PredictionWriter(path, FEATURES)
        return self.predlog.PredictionWriter(self.predlog.prediction_log_at(path), FEATURES)

    def submit(self, writer: Any, request: dict[str, Any], scored_at: str) -> None:
        r, batch = request, self.predlog.PredictionBatch
        columns = (r["ids"], r["tx_us"], r["customers"], r["terminals"], r["amounts"], r["features"])
        if self.name == "before":
            writer.submit_batch(batch.scored(*columns, r["probability"], 0.5, "1", scored_at))
        else:
            writer.submit(batch(*columns, r["probability"], r["flags"], 0.5, "1", scored_at))

    def read_week_feedback(self, path: Any, start: dt.date, end: dt.date) -> Any:
        if self.name == "before":
            return self.predlog.read_feedback(path)
        return self.predlog.read_feedback(path, start, end)


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """Seconds ``fn(*args)`` took, and what it returned."""
    began = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - began, result


Place = Callable[[str], Any]  # a log's name in a round -> where it is (a path, a URL)


def through_writer(side: Side, place: Place, size: int, n: int) -> dict[str, float]:
    """Rows per second from the first submit to all committed, and the submit's own cost."""
    batches = requests(n, size)
    writer = side.writer(place(f"writer-{size}")).start()
    began = time.perf_counter()
    for request in batches:
        side.submit(writer, request, "2026-01-05T10:00:00+00:00")
    submitted = time.perf_counter() - began
    writer.close()
    total = time.perf_counter() - began
    return {"rows_per_s": n * size / total, "submit_us": submitted / n * 1e6}


def records(n: int) -> list[dict[str, Any]]:
    """``n`` prediction-log records as dicts, as tools and tests append them."""
    (request,) = requests(1, n, seed=1)
    stamps = (request["tx_us"].astype("datetime64[us]").astype(dt.datetime)).tolist()
    return [
        {
            "transaction_id": request["ids"][i],
            "tx_datetime": stamps[i].replace(tzinfo=dt.UTC).isoformat(),
            "customer_id": request["customers"][i],
            "terminal_id": request["terminals"][i],
            "tx_amount": request["amounts"][i],
            **{f"f_{name}": float(request["features"][i, k]) for k, name in enumerate(FEATURES)},
            "fraud_probability": float(request["probability"][i]),
            "is_fraud": bool(request["flags"][i]),
            "threshold": 0.5,
            "model_version": "1",
            "scored_at": "2026-01-05T10:00:00+00:00",
        }
        for i in range(n)
    ]


def separate_appends(side: Side, location: Any, n: int = 200, size: int = 1000) -> float:
    """Rows per second of ``n`` appends of ``size``-row batches, each its own commit."""
    tables = [
        side.predlog.batches_table(
            [
                side.predlog.PredictionBatch(
                    *(r["ids"], r["tx_us"], r["customers"], r["terminals"], r["amounts"], r["features"]),
                    *(r["probability"], r["flags"], 0.5, "1", "2026-01-05T10:00:00+00:00"),
                )
            ],
            FEATURES,
        )
        for r in requests(n, size, seed=4)
    ]
    store = side.predlog.prediction_log_at(location)
    seconds, _ = timed(lambda: [store.append_predictions(table) for table in tables])
    store.close()
    return n * size / seconds


def fill(side: Side, path: Any) -> None:
    """Six weeks as the API logs them (1,000-row requests, one flush a day) and all their labels."""
    per_day = PER_WEEK // 7
    writer = side.writer(path).start()
    batches = requests(WEEKS * 7 * per_day // 1000, 1000, seed=2)
    for k, request in enumerate(batches):
        side.submit(writer, request, "2026-01-05T10:00:00+00:00")
        if (k + 1) % (per_day // 1000) == 0:
            writer.flush()
    writer.close()
    rng = np.random.default_rng(3)
    for request in batches:
        fraud = (rng.random(len(request["ids"])) < 0.01).astype(int).tolist()
        labels = [
            {"transaction_id": tid, "tx_fraud": f, "tx_fraud_scenario": f, "received_on": "2026-03-01"}
            for tid, f in zip(request["ids"], fraud, strict=True)
        ]
        side.predlog.append_feedback(path, labels)


def measure_round(side: Side, place: Place, megabytes: Callable[[Any], float]) -> dict[str, float]:
    """One round of every figure, each log at ``place(name)``; ``megabytes``: a log's size."""
    out: dict[str, float] = {}
    for size, n in ((1, 20_000), (1000, 200)):
        got = through_writer(side, place, size, n)
        out[f"writer_{size}_rows_per_s"], out[f"writer_{size}_submit_us"] = (
            got["rows_per_s"],
            got["submit_us"],
        )
    recs = records(10_000)
    if side.name == "after":  # the API's appends one by one, as its writer makes them under steady traffic
        out["append_batches_rows_per_s"] = separate_appends(side, place("batches"))
    sync = place("sync")
    seconds, _ = timed(lambda: [side.predlog.append_predictions(sync, recs) for _ in range(5)])
    out["append_records_rows_per_s"] = 5 * len(recs) / seconds
    path = place("weeks")
    fill(side, path)
    week = (START + dt.timedelta(weeks=WEEKS - 1), START + dt.timedelta(weeks=WEEKS, days=-1))
    out["read_week_s"], frame = timed(side.predlog.read_predictions, path, *week)
    out["read_week_rows"] = len(frame)
    out["read_week_feedback_s"], labels = timed(side.read_week_feedback, path, *week)
    out["read_week_feedback_rows"] = len(labels)
    out["database_mb"] = megabytes(path)
    return out


def sqlite_round(side: Side) -> dict[str, float]:
    """:func:`measure_round` with each log a SQLite file in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        return measure_round(
            side,
            lambda name: folder / f"{name}.db",
            lambda path: sum(p.stat().st_size for p in folder.glob(f"{path.name}*")) / 1e6,
        )


@contextmanager
def postgres_databases(url: str) -> Iterator[Place]:
    """Throwaway databases on ``url``'s server, one per log name, dropped on leaving."""
    import psycopg2

    base, _, _ = url.rpartition("/")
    admin = psycopg2.connect(url, connect_timeout=5)
    admin.autocommit = True  # CREATE / DROP DATABASE refuse to run inside a transaction
    made: list[str] = []
    prefix = f"fraudops_bench_{uuid.uuid4().hex[:8]}"

    def place(name: str) -> str:
        made.append(f"{prefix}_{name.replace('-', '_')}")
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{made[-1]}"')
        return f"{base}/{made[-1]}"

    try:
        yield place
    finally:
        with admin.cursor() as cur:
            for name in made:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def postgres_round(side: Side, url: str) -> dict[str, float]:
    """:func:`measure_round` with each log in a throwaway PostgreSQL database beside ``url``'s."""
    import psycopg2

    def megabytes(location: str) -> float:
        with psycopg2.connect(location) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_total_relation_size('batches') + pg_total_relation_size('feedback')")
            size = int(cur.fetchone()[0]) / 1e6
        conn.close()
        return size

    with postgres_databases(url) as place:
        return measure_round(side, place, megabytes)


def medians(results: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over rounds."""
    return {name: statistics.median(r[name] for r in results) for name in results[0]}


def measure(side_name: str, rounds: int) -> dict[str, float]:
    """Every figure of one side, the median over ``rounds``."""
    side = Side(side_name)
    return medians([sqlite_round(side) for _ in range(rounds)])


def run_side(name: str, tree: Path, rounds: int) -> dict[str, Any]:
    """:func:`measure` in a process whose ``core`` is ``tree``'s."""
    from benchmarks.project import side_env  # the parent's: each side runs this file as a script

    command = [sys.executable, str(Path(__file__).resolve()), name, str(rounds)]
    out = subprocess.run(
        command, cwd=tree, env=side_env(tree), capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out.splitlines()[-1]))


ROWS = [
    ("writer_1_rows_per_s", "PredictionWriter, 1-row requests: rows/s committed", "{:,.0f}"),
    ("writer_1_submit_us", "  build + submit, per request (µs)", "{:.1f}"),
    ("writer_1000_rows_per_s", "PredictionWriter, 1,000-row requests: rows/s committed", "{:,.0f}"),
    ("writer_1000_submit_us", "  build + submit, per request (µs)", "{:.1f}"),
    ("append_records_rows_per_s", "append_predictions, 10,000 records a call: rows/s", "{:,.0f}"),
    ("read_week_s", "read a week of predictions (s)", "{:.3f}"),
    ("read_week_rows", "  rows read", "{:,.0f}"),
    ("read_week_feedback_s", "read the labels monitoring joins to that week (s)", "{:.3f}"),
    ("read_week_feedback_rows", "  labels read", "{:,.0f}"),
    ("database_mb", "database of six weeks, labels included (MB)", "{:.1f}"),
]


STORE_ROW = (
    "append_batches_rows_per_s",
    "append_predictions, 200 batches of 1,000 rows, a commit each: rows/s",
    "{:,.0f}",
)


def compare_stores(url: str, rounds: int) -> None:
    """This tree's SQLite and PostgreSQL stores, then a markdown table of their figures."""
    from benchmarks.measure import describe_machine
    from core.predlog_pg import without_password

    side = Side("after")
    pairs = [(sqlite_round(side), postgres_round(side, url)) for _ in range(rounds)]  # alternated: the
    sqlite, postgres = (medians([pair[k] for pair in pairs]) for k in (0, 1))  # machine's load hits both
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    print(
        f"# prediction log stores, SQLite and PostgreSQL ({without_password(url)}), at {commit.stdout.strip()}"
    )
    box = describe_machine()
    where = f"{box['cpu']}, {box['cores']} cores, {box['memory_gb']} GB, Python {box['python']}"
    print(f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {where}")
    print(f"# median of {rounds} rounds")
    print("| | SQLite | PostgreSQL | PostgreSQL / SQLite |\n|---|---:|---:|---:|")
    for key, label, form in [*ROWS[:4], STORE_ROW, *ROWS[4:]]:
        ratio = postgres[key] / sqlite[key] if sqlite[key] else float("nan")
        print(f"| {label} | {form.format(sqlite[key])} | {form.format(postgres[key])} | {ratio:.2f} |")


def main(rounds: int = 3) -> None:
    """Both sides, then a markdown table of their figures."""
    from benchmarks.measure import describe_machine
    from benchmarks.project import worktree

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    before = run_side("before", worktree(BEFORE), rounds)
    after = run_side("after", ROOT, rounds)
    print(f"# prediction log, before ({BEFORE}) and after (working tree at {commit.stdout.strip()})")
    box = describe_machine()
    where = f"{box['cpu']}, {box['cores']} cores, {box['memory_gb']} GB, Python {box['python']}"
    print(f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {where}")
    print(f"# median of {rounds} rounds")
    print("| | before | after | after / before |\n|---|---:|---:|---:|")
    for key, label, form in ROWS:
        ratio = after[key] / before[key] if before[key] else float("nan")
        print(f"| {label} | {form.format(before[key])} | {form.format(after[key])} | {ratio:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("before", "after"):  # one side, in its own process
        print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
    elif len(sys.argv) > 2 and sys.argv[1] == "--url":
        compare_stores(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
