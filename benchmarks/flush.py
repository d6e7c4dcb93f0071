"""What one flush of the API's prediction-log writer costs the server's core, in thread CPU time.

``python -m benchmarks.flush [--batches 60] [--rounds 300]``: ``--batches`` single-transaction requests
(what 50 ms of traffic at one connection leaves queued) are turned into one table
(:func:`core.predlog.batches_table`) and appended to a SQLite log (``append_predictions``), as
:class:`core.predlog.PredictionWriter`'s thread does every ``log_flush_interval_s``. Printed: the
median thread CPU time of each step over ``--rounds`` flushes. The server shares one core between
its requests and this thread, so a request arriving during a flush waits about this long.

Run it with another tree's ``PYTHONPATH`` (a git worktree) to measure that tree's writer.
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from core.predlog import PredictionBatch, SqlitePredictionLog, batches_table

FEATURES = [f"feature_{k:02d}" for k in range(15)]
app = typer.Typer(add_completion=False)


def request(i: int, rng: np.random.Generator) -> PredictionBatch:
    """One scored single-transaction request, as the API submits it."""
    return PredictionBatch(
        transaction_id=[f"T{i}"],
        tx_us=np.array([1_767_600_000_000_000 + i * 1_000], np.int64),
        customer_id=[i % 5_000],
        terminal_id=[i % 10_000],
        tx_amount=[round(float(rng.gamma(2, 30)), 2)],
        features=rng.random((1, len(FEATURES))),
        fraud_probability=rng.random(1),
        is_fraud=np.array([False]),
        threshold=0.186,
        model_version="3",
        scored_at=dt.datetime.now(dt.UTC).isoformat(),
    )


@app.command()
def main(
    batches: Annotated[int, typer.Option(min=1, help="Requests queued in one flush.")] = 60,
    rounds: Annotated[int, typer.Option(min=10, help="Flushes measured.")] = 300,
) -> None:
    """Median thread CPU time of building a flush's table and of appending it."""
    rng = np.random.default_rng(0)
    build, append = [], []
    with tempfile.TemporaryDirectory() as folder:
        log = SqlitePredictionLog(Path(folder) / "predictions.db")
        for r in range(rounds + 10):  # the first 10: warm-up
            queued = [request(r * batches + k, rng) for k in range(batches)]
            t0 = time.thread_time()
            table = batches_table(queued, FEATURES)
            t1 = time.thread_time()
            log.append_predictions(table)
            t2 = time.thread_time()
            if r >= 10:
                build.append(t1 - t0)
                append.append(t2 - t1)
        log.close()
    b, a = statistics.median(build) * 1e3, statistics.median(append) * 1e3
    print(
        f"{batches} requests a flush, {rounds} flushes: table {b:.3f} ms + append {a:.3f} ms = {b + a:.3f} ms"
    )


if __name__ == "__main__":
    app()
