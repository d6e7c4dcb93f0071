"""The point of Dask, shown under a memory cap: at 10x book scale one process runs out, Dask finishes.

``python -m benchmarks.memcap`` (or ``make bench-memcap``; root, Linux; about 10 minutes on 2 cores).
The cap is a memory cgroup (v2 ``memory.max``, or v1 ``memory.limit_in_bytes``) that holds the whole
process tree of a run: the command, and for the Dask engine its scheduler, nannies and worker
processes. No swap is allowed past it, so going over means the kernel's OOM killer.

1. ``fraudops features --engine single`` without a cap: the reference table, and its peak memory;
2. the same under the cap: it is killed (or raises MemoryError);
3. ``fraudops features --engine dask`` under the same cap, on a local cluster whose workers spill to
   disk past their own limit: it finishes, and its table is compared with the reference, batch by
   batch, every column and row.

The world (``fraudops simulate``, seed 0, 183 days) is simulated once into ``--worlds`` and reused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.growth_dask import count_rows, ensure_world, features_command, run_sampled
from benchmarks.measure import describe_code, describe_machine

CGROUP_ROOT = Path("/sys/fs/cgroup")
app = typer.Typer(add_completion=False)
console = Console()


class MemoryCgroup:
    """A fresh memory cgroup with a limit; its members are the processes started inside it."""

    def __init__(self, name: str, limit_bytes: int) -> None:
        self.v2 = (
            "memory" in (CGROUP_ROOT / "cgroup.controllers").read_text().split()
            if (CGROUP_ROOT / "cgroup.controllers").exists()
            else False
        )
        parent = CGROUP_ROOT if self.v2 else CGROUP_ROOT / "memory"
        if not (parent / "cgroup.procs").exists():
            raise SystemExit("no memory cgroup controller here: the cap needs cgroup v1 or v2 with memory")
        self.path = parent / name
        self.path.mkdir()
        if self.v2:
            (self.path / "memory.max").write_text(str(limit_bytes))
            (self.path / "memory.swap.max").write_text("0")
        else:
            (self.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
            swap = self.path / "memory.memsw.limit_in_bytes"  # absent when the kernel does not account swap
            if swap.exists():
                swap.write_text(str(limit_bytes))

    def enter(self) -> None:
        """Move the calling process in (a ``preexec_fn``: the child, before ``exec``)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def figures(self) -> dict[str, int]:
        """Peak usage (page cache included) and how many times the OOM killer struck."""
        if self.v2:
            events = dict(line.split() for line in (self.path / "memory.events").read_text().splitlines())
            peak_file = self.path / "memory.peak"
            peak = int(peak_file.read_text()) if peak_file.exists() else -1
            return {"cgroup_peak_mb": peak // 1024**2, "oom_kills": int(events.get("oom_kill", 0))}
        control = dict(line.split() for line in (self.path / "memory.oom_control").read_text().splitlines())
        peak = int((self.path / "memory.max_usage_in_bytes").read_text())
        return {"cgroup_peak_mb": peak // 1024**2, "oom_kills": int(control.get("oom_kill", 0))}

    def remove(self) -> None:
        """Kill what is still inside (a run stopped early leaves its workers there), then remove it."""
        procs = self.path / "cgroup.procs"
        deadline = time.monotonic() + 10
        while (pids := procs.read_text().split()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.1)
        self.path.rmdir()


@contextmanager
def memory_cgroup(name: str, limit_bytes: int) -> Iterator[MemoryCgroup]:
    """A capped cgroup for one run, removed after it (its processes are gone by then)."""
    group = MemoryCgroup(f"{name}-{os.getpid()}", limit_bytes)
    try:
        yield group
    finally:
        group.remove()


def run_capped(
    command: list[str], env: dict[str, str], name: str, limit_bytes: int, timeout_s: float | None = None
) -> dict[str, Any]:
    """``command`` inside a fresh cgroup capped at ``limit_bytes``: run figures and the cgroup's."""
    with memory_cgroup(name, limit_bytes) as group:
        result = run_sampled(command, env, preexec=group.enter, timeout_s=timeout_s)
        return result | group.figures()


def announce(name: str, run: dict[str, Any]) -> dict[str, Any]:
    """Print a run's outcome as soon as it is known (the whole proof takes many minutes)."""
    ending = "timed out, killed" if run.get("timed_out") else f"exit {run['returncode']}"
    console.print(
        f"{name}: {ending} after {run['seconds']:,.0f} s, peak tree RSS {run['peak_tree_rss_mb']:,} MB"
    )
    return run


def same_tables(left: Path, right: Path, batch_rows: int = 1_000_000) -> bool:
    """Every row and column equal, in order, compared a batch at a time (neither file held whole)."""
    import pyarrow.parquet as pq

    a, b = pq.ParquetFile(left), pq.ParquetFile(right)
    if a.metadata.num_rows != b.metadata.num_rows or a.schema_arrow.names != b.schema_arrow.names:
        return False
    batches = zip(a.iter_batches(batch_rows), b.iter_batches(batch_rows), strict=True)
    return all(x.equals(y) for x, y in batches)


@app.command()
def main(
    scale: Annotated[float, typer.Option(help="Book-scale multiple of the world.")] = 10,
    cap_gb: Annotated[float, typer.Option(help="The cgroup's memory limit, GiB (whole process tree).")] = 3.0,
    worker_memory: Annotated[str, typer.Option(help="Each Dask worker's limit (spill past it).")] = "1GiB",
    workers: Annotated[int, typer.Option(help="Dask worker processes.")] = 2,
    worlds: Annotated[Path, typer.Option(help="Where the simulated worlds are kept.")] = Path(
        "/tmp/fraudops-growth"
    ),
    reuse_reference: Annotated[
        bool, typer.Option(help="Keep an uncapped reference table from an earlier run.")
    ] = False,
    out: Annotated[Path, typer.Option(help="The results (JSON).")] = Path("reports/memcap.json"),
    timeout_minutes: Annotated[
        float, typer.Option(min=1, help="A run still going after this long is killed and reported so.")
    ] = 60.0,
) -> None:
    """Single process and Dask under one memory cap; the Dask table checked against the uncapped one."""
    world = ensure_world(worlds, scale)
    limit = int(cap_gb * 1024**3)
    timeout = timeout_minutes * 60
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "FRAUDOPS_DASK_SCHEDULER": "",  # the local cluster starts inside the cgroup
        "FRAUDOPS_DASK_WORKERS": str(workers),
        "FRAUDOPS_DASK_WORKER_MEMORY": worker_memory,
    }
    reference = world / "features-reference.parquet"
    runs: dict[str, dict[str, Any]] = {}
    if not (reuse_reference and reference.exists()):
        runs["single, no cap"] = announce(
            "single, no cap",
            run_sampled(features_command(world, reference, "single"), env, timeout_s=timeout),
        )
    capped_single = world / "features-single-capped.parquet"
    runs["single, capped"] = announce(
        "single, capped",
        run_capped(features_command(world, capped_single, "single"), env, "fraudops-single", limit, timeout),
    )
    capped_dask = world / "features-dask-capped.parquet"
    runs["dask, capped"] = announce(
        "dask, capped",
        run_capped(features_command(world, capped_dask, "dask"), env, "fraudops-dask", limit, timeout),
    )
    finished = runs["dask, capped"]["returncode"] == 0
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.memcap", *sys.argv[1:]]),
        "machine": describe_machine(("dask", "distributed", "pandas", "numpy")),
        "code": describe_code(),
        "world": {"scale": scale, "transactions": count_rows(sorted((world / "transactions").glob("*.parquet")))},
        "cap": {"gib": cap_gb, "kind": "memory cgroup, whole process tree, no swap", "worker_memory": worker_memory,
                "workers": workers},
        "runs": runs,
        "dask_equals_reference": finished and same_tables(capped_dask, reference),
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print_report(report)
    console.print(f"written {out}")


def print_report(report: dict[str, Any]) -> None:
    """One row a run, then the comparison."""
    cap = report["cap"]
    table = Table(
        title=f"{report['world']['transactions']:,} transactions, cap {cap['gib']:g} GiB ({cap['kind']})"
    )
    for column in ("run", "exit", "seconds", "peak tree RSS MB", "cgroup peak MB", "OOM kills"):
        table.add_column(column)
    for name, run in report["runs"].items():
        table.add_row(
            name,
            "timed out" if run.get("timed_out") else str(run["returncode"]),
            f"{run['seconds']:.1f}",
            f"{run['peak_tree_rss_mb']:,}",
            f"{run.get('cgroup_peak_mb', '-')}",
            f"{run.get('oom_kills', '-')}",
        )
    console.print(table)
    console.print(
        f"Dask table under the cap == uncapped single-process table: {report['dask_equals_reference']}"
    )


if __name__ == "__main__":
    app()
