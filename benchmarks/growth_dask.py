"""Feature computation as the data grows, per engine: wall time and the whole process tree's peak memory.

``python -m benchmarks.growth_dask --engine dask --engine single --scale 0.25 --scale 1``. A scale
multiplies the book's population (5,000 customers, 10,000 terminals; 183 days, about 1.75 M
transactions at 1x). Each world is simulated once into ``--worlds`` and reused. Each run is
``fraudops features --world W --out F --engine E`` in its own process tree (the Dask engine's local
cluster: the command, its scheduler and its worker processes), sampled every 0.1 s: the peak is of
the tree's summed resident memory, so a Dask run counts its workers and its client together.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import psutil
import typer
from rich.console import Console
from rich.table import Table

from benchmarks.measure import describe_code, describe_machine, process_tree

BOOK_CUSTOMERS, BOOK_TERMINALS, BOOK_DAYS = 5000, 10000, 183
SAMPLE_S = 0.1
app = typer.Typer(add_completion=False)
console = Console()


def world_dir(worlds: Path, scale: float) -> Path:
    """Where the world of ``scale`` lives (``world-10x``, ``world-0.25x``)."""
    return worlds / f"world-{scale:g}x"


def ensure_world(worlds: Path, scale: float) -> Path:
    """The world of ``scale``, simulated with `fraudops simulate` the first time (seed 0)."""
    folder = world_dir(worlds, scale)
    if not (folder / "transactions").exists():
        command = [
            *fraudops(),
            "simulate",
            "--out",
            str(folder),
            "--customers",
            str(round(BOOK_CUSTOMERS * scale)),
            "--terminals",
            str(round(BOOK_TERMINALS * scale)),
            "--days",
            str(BOOK_DAYS),
            "--seed",
            "0",
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return folder


def fraudops() -> list[str]:
    """The command line, run by this interpreter (the project's venv)."""
    return [sys.executable, "-m", "fraudops"]


def tree_rss_mb(pid: int) -> float:
    """Resident memory summed over ``pid`` and its descendants, now, in MB."""
    total = 0
    for member in process_tree(pid):
        try:
            total += psutil.Process(member).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 1024**2


def run_sampled(
    command: list[str],
    env: dict[str, str],
    preexec: Callable[[], None] | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run ``command`` (``preexec`` in the child before it starts); its wall time, exit code and the
    tree's peak summed resident memory. Past ``timeout_s`` the whole process group is killed and
    ``timed_out`` is true (a Dask cluster that stops making progress would otherwise wait forever)."""
    started = time.perf_counter()
    timed_out = False
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a chatty child never blocks on it
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
            start_new_session=True,  # its own group: a timeout kills the workers it started too
        )
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, tree_rss_mb(process.pid))
            if timeout_s is not None and time.perf_counter() - started > timeout_s:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                break
            time.sleep(SAMPLE_S)
        log.seek(0)
        output = log.read()
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "peak_tree_rss_mb": round(peak),
        "returncode": process.returncode,
        "timed_out": timed_out,
        "output_tail": output.strip().splitlines()[-3:],
    }


def features_command(world: Path, out: Path, engine: str) -> list[str]:
    """``fraudops features`` on ``world`` with ``engine``."""
    return [*fraudops(), "features", "--world", str(world), "--out", str(out), "--engine", engine]


def run_features(world: Path, engine: str, workers: int, worker_memory: str) -> dict[str, Any]:
    """One feature run of ``engine`` on ``world`` (the table is written beside the world, then kept)."""
    env = {
        **os.environ,
        "FRAUDOPS_DASK_WORKERS": str(workers),
        "FRAUDOPS_DASK_WORKER_MEMORY": worker_memory,
        "FRAUDOPS_DASK_SCHEDULER": "",  # a local cluster inside the measured tree
        "OMP_NUM_THREADS": "1",
    }
    out = world / f"features-{engine}.parquet"
    result = run_sampled(features_command(world, out, engine), env)
    result["transactions"] = count_rows(sorted((world / "transactions").glob("*.parquet")))
    return result


def count_rows(paths: list[Path]) -> int:
    """Rows of Parquet files, from their footers."""
    import pyarrow.parquet as pq

    return sum(int(pq.ParquetFile(p).metadata.num_rows) for p in paths)


@app.command()
def main(
    engine: Annotated[list[str], typer.Option(help="single or dask; repeat for both.")] = ["dask"],  # noqa: B006
    scale: Annotated[list[float], typer.Option(help="Book-scale multiples; repeat.")] = [0.25, 1, 4, 10],  # noqa: B006
    worlds: Annotated[Path, typer.Option(help="Where the simulated worlds are kept.")] = Path(
        "/tmp/fraudops-growth"
    ),
    workers: Annotated[int, typer.Option(help="The Dask engine's local worker processes.")] = 2,
    worker_memory: Annotated[str, typer.Option(help="Each local worker's memory limit.")] = "auto",
    out: Annotated[Path, typer.Option(help="The results (JSON).")] = Path("reports/growth_dask.json"),
) -> None:
    """Time each engine's feature computation at each scale; print a table and write the JSON."""
    results: dict[str, dict[str, Any]] = {name: {} for name in engine}
    for size in scale:
        world = ensure_world(worlds, size)
        for name in engine:
            results[name][f"{size:g}x"] = run_features(world, name, workers, worker_memory)
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.growth_dask", *sys.argv[1:]]),
        "machine": describe_machine(("dask", "distributed", "pandas", "numpy")),
        "code": describe_code(),
        "settings": {"workers": workers, "worker_memory": worker_memory, "threads_per_worker": 1},
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    table = Table(title="Features by engine (wall time, peak resident memory of the process tree)")
    for column in ("engine", "scale", "transactions", "seconds", "peak MB", "exit"):
        table.add_column(column)
    for name, by_scale in results.items():
        for label, r in by_scale.items():
            table.add_row(
                name,
                label,
                f"{r['transactions']:,}",
                f"{r['seconds']:.1f}",
                f"{r['peak_tree_rss_mb']:,}",
                str(r["returncode"]),
            )
    console.print(table)
    console.print(f"written {out}")


if __name__ == "__main__":
    app()
