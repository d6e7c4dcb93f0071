"""How the heavy steps grow with the data: simulate, features and training at multiples of book scale.

``python -m benchmarks.growth`` (or ``make bench-growth``; not part of ``make bench``: 10x takes minutes
and about 3 GB). Scale 1 is the Fraud Detection Handbook's book scale (5,000 customers, 10,000
terminals, 183 days, about 1.76 million transactions); a scale multiplies customers and terminals, so
rows grow with it while the days, and so the training windows' length, stay.

Each step runs in a fresh process (its peak memory is its own) and hands the next one its output as a
parquet file: simulate (in memory, as ``fraudops simulate`` does before it writes), features (the
``features`` stage's work: ``build_feature_table``), train (the ``train`` stage's work in memory:
search on the validation folds, fit, prequential folds with the baseline, ONNX export). Times exclude
the interpreter's start, imports and the parquet hand-over, which are reported apart (``io_seconds``).

Results are keyed by engine, then scale, then step, and merged into the JSON file, so an engine's run
leaves the others' figures in place. ``single`` is the one-process numpy path; ``dask`` reads the
hand-over file a few row groups a task on a local cluster (:mod:`pipelines.features_dask`) and runs the
training search's fits there; its peak memory adds the worker processes' peaks to the step's own.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from benchmarks.measure import ROOT, describe_code, describe_machine, own_peak_rss_mb

BOOK_CUSTOMERS, BOOK_TERMINALS, BOOK_DAYS = 5000, 10000, 183
STEPS = ("simulate", "features", "train")
DEFAULT_JSON = ROOT / "docs" / "images" / "growth.json"
DEFAULT_PNG = ROOT / "docs" / "images" / "growth.png"
app = typer.Typer(add_completion=False)


def single_features(transactions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The ``features`` stage in one process (numpy)."""
    from core.params import load_params
    from pipelines.features import build_feature_table

    return build_feature_table(transactions, labels, load_params(ROOT / "params.yaml"))


# engine name -> the features step's work (transactions, labels -> feature table)
FEATURE_ENGINES: dict[str, Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]] = {
    "single": single_features,
}
# engines that read the hand-over file themselves and never hold the table in this process; their
# step reports the peaks of its cluster's worker processes, added to this one's
CLUSTER_ENGINES = ("dask",)
ENGINES = (*FEATURE_ENGINES, *CLUSTER_ENGINES)


def dask_settings() -> Any:
    """The settings of a local Dask cluster for this step (FRAUDOPS_DASK_WORKERS etc. still apply)."""
    from core.settings import get_settings

    return get_settings().model_copy(update={"feature_engine": "dask", "dask_scheduler": ""})


def workers_peak_rss_mb(client: Any) -> float:
    """The cluster's worker processes' peak resident memory, summed (an upper bound of their joint peak)."""
    return float(sum(client.run(own_peak_rss_mb).values()))


def step_features_dask(work: Path) -> dict[str, float]:
    """The feature table on a local Dask cluster, Parquet in and out (the file's row groups, ~500k rows a task)."""
    from core.params import load_params
    from pipelines.cluster import dask_client
    from pipelines.features_dask import write_feature_table

    source, params = [work / "simulated.parquet"], load_params(ROOT / "params.yaml")
    with dask_client(dask_settings()) as client:
        rows, figures = timed(
            lambda: write_feature_table(client, source, source, params, work / "features-dask.parquet")
        )
        workers = workers_peak_rss_mb(client)
    return figures | {"rows": rows, "io_seconds": 0.0, "workers_peak_rss_mb": workers}


def timed(work: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """``work()`` with its wall and CPU seconds (CPU: every thread of this process, so a busy machine
    that steals the cores shows as wall above CPU)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}


def step_simulate(scale: float, work: Path) -> dict[str, float]:
    """Population and transactions in memory; then the hand-over file (timed apart)."""
    from core.schemas import LABEL_COLUMNS, TRANSACTION_COLUMNS
    from core.simulator import SimulationConfig, make_population, simulate

    cfg = SimulationConfig(
        customers=round(BOOK_CUSTOMERS * scale), terminals=round(BOOK_TERMINALS * scale), days=BOOK_DAYS
    )
    (tx, _), figures = timed(
        lambda: simulate(cfg, make_population(cfg.customers, cfg.terminals, cfg.radius, cfg.population_seed))
    )
    columns = list(dict.fromkeys(TRANSACTION_COLUMNS + LABEL_COLUMNS))
    _, io = timed(lambda: tx[columns].to_parquet(work / "simulated.parquet", index=False))
    return figures | {
        "rows": len(tx),
        "io_seconds": io["seconds"],
        "fraud_rate": float(tx["tx_fraud"].mean()),
    }


def step_features(engine: str, work: Path) -> dict[str, float]:
    """The feature table from the simulated transactions and labels."""
    from core.schemas import LABEL_COLUMNS, TRANSACTION_COLUMNS

    if engine == "dask":
        return step_features_dask(work)

    frame, read = timed(lambda: pd.read_parquet(work / "simulated.parquet"))
    transactions, labels = frame[TRANSACTION_COLUMNS], frame[LABEL_COLUMNS]
    del frame
    table, figures = timed(lambda: FEATURE_ENGINES[engine](transactions, labels))
    _, write = timed(lambda: table.to_parquet(work / f"features-{engine}.parquet", index=False))
    return figures | {"rows": len(table), "io_seconds": read["seconds"] + write["seconds"]}


def step_train(engine: str, work: Path) -> dict[str, float]:
    """The train stage in memory on that table (search, fit, folds with the baseline, ONNX export)."""
    from core.params import load_params
    from pipelines.train_stage import train_on_table

    table, read = timed(lambda: pd.read_parquet(work / f"features-{engine}.parquet"))
    workers = 0.0
    if engine == "dask":  # the search's fits on a local cluster
        from pipelines.cluster import dask_client

        with dask_client(dask_settings()) as client:
            result, figures = timed(
                lambda: train_on_table(table, load_params(ROOT / "params.yaml"), client=client)
            )
            workers = workers_peak_rss_mb(client)
    else:
        result, figures = timed(lambda: train_on_table(table, load_params(ROOT / "params.yaml")))
    return figures | {
        "workers_peak_rss_mb": workers,
        "rows": len(table),
        "train_rows": len(result.train),
        "io_seconds": read["seconds"],
        "test_average_precision": result.metrics["average_precision"],
        "folds_average_precision_mean": result.metrics["prequential_average_precision_mean"],
    }


def run_step(step: str, scale: float, engine: str, work: Path) -> dict[str, float]:
    """One step in a fresh process; its JSON line back, with the process's peak memory."""
    command = [sys.executable, "-m", "benchmarks.growth", "--step", step, "--scale", str(scale)]
    command += ["--engine", engine, "--work", str(work)]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{step} at {scale}x failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def load_results(path: Path) -> dict[str, Any]:
    """The results file, or an empty one."""
    return json.loads(path.read_text()) if path.exists() else {"engines": {}}


def per_row_us(figures: dict[str, float], rows: float) -> float:
    """Microseconds of wall time per transaction of the data."""
    return figures["seconds"] / rows * 1e6


def write_plot(results: dict[str, Any], path: Path, before: dict[str, Any] | None) -> None:
    """Time per row and peak memory against scale, per engine and step (``before``: dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (per_row, cpu_row, memory) = plt.subplots(1, 3, figsize=(15, 4.4))
    colours = {"simulate": "tab:blue", "features": "tab:orange", "train": "tab:green"}
    runs = [(results, "-", "")] + ([(before, "--", " (before)")] if before else [])
    for data, style, suffix in runs:
        for engine, scales in data["engines"].items():
            ordered = sorted(scales.items(), key=lambda item: float(item[0]))
            for step in STEPS:
                done = [
                    (float(scale), steps) for scale, steps in ordered if step in steps
                ]  # a step not run: no point
                if not done:
                    continue
                xs, label = [x for x, _ in done], f"{step} [{engine}]{suffix}"
                rows = [steps["simulate"]["rows"] for _, steps in done]
                wall = [per_row_us(steps[step], n) for (_, steps), n in zip(done, rows, strict=True)]
                cpu = [steps[step]["cpu_seconds"] / n * 1e6 for (_, steps), n in zip(done, rows, strict=True)]
                gb = [steps[step]["peak_rss_mb"] / 1024 for _, steps in done]
                for axis, ys in ((per_row, wall), (cpu_row, cpu), (memory, gb)):
                    axis.plot(xs, ys, style, marker="o", color=colours[step], label=label)
    for axis, title, unit in (
        (per_row, "wall time per transaction", "µs per row"),
        (cpu_row, "CPU time per transaction", "µs per row"),
        (memory, "peak memory of the step's process", "GB"),
    ):
        axis.set_xscale("log")
        axis.set_xticks([0.25, 1, 4, 10], labels=["0.25×", "1×", "4×", "10×"])
        axis.set_xlabel("scale (× book scale: 1.76 M transactions)")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(alpha=0.3, which="both")
    for axis in (per_row, cpu_row):  # training costs ~100x a row's simulation: flat lines are what matter
        axis.set_yscale("log")
    memory.set_yscale("log")  # on log-log axes memory that grows with the rows is a line of slope 1
    per_row.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def print_table(results: dict[str, Any]) -> None:
    """Every engine's figures, a row per scale and step."""
    table = Table(title=f"growth — {results.get('date', '?')} — {results.get('machine', {}).get('cpu', '?')}")
    for col in ("engine", "scale", "step", "rows", "wall s", "CPU s", "µs/row", "peak MB", "io s"):
        table.add_column(col, justify="right")
    for engine, scales in results["engines"].items():
        for scale, steps in sorted(scales.items(), key=lambda item: float(item[0])):
            rows = steps["simulate"]["rows"]
            for step in STEPS:
                if step in steps:
                    f = steps[step]
                    table.add_row(
                        engine, f"{scale}×", step, f"{rows:,}", f"{f['seconds']:.2f}", f"{f['cpu_seconds']:.2f}",
                        f"{per_row_us(f, rows):.2f}", f"{f['peak_rss_mb']:,.0f}", f"{f['io_seconds']:.2f}",
                    )  # fmt: skip
    Console().print(table)


@app.command()
def main(
    scales: Annotated[str, typer.Option(help="Comma-separated multiples of book scale.")] = "0.25,1,4,10",
    engine: Annotated[str, typer.Option(help=f"Feature engine: {', '.join(ENGINES)}.")] = "single",
    out: Annotated[Path, typer.Option(help="Results JSON, merged by engine and scale.")] = DEFAULT_JSON,
    plot: Annotated[Path, typer.Option(help="The plot (PNG) of every engine in the results.")] = DEFAULT_PNG,
    before: Annotated[Path | None, typer.Option(help="An earlier results JSON, drawn dashed.")] = None,
    plot_only: Annotated[
        bool, typer.Option(help="Redraw the plot and table from the JSON, run nothing.")
    ] = False,
    step: Annotated[
        str | None, typer.Option(help="(internal) run one step in this process, print JSON.")
    ] = None,
    scale: Annotated[float, typer.Option(help="(internal) the step's scale.")] = 1.0,
    work: Annotated[Path | None, typer.Option(help="(internal) the step's hand-over folder.")] = None,
) -> None:
    """Run simulate, features and train at each scale, each in a fresh process; write JSON and a plot."""
    if engine not in ENGINES:
        raise typer.BadParameter(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
    if step is not None:
        assert work is not None
        runners = {
            "simulate": lambda: step_simulate(scale, work),
            "features": lambda: step_features(engine, work),
            "train": lambda: step_train(engine, work),
        }
        figures = runners[step]()
        figures["peak_rss_mb"] = own_peak_rss_mb() + figures.pop("workers_peak_rss_mb", 0.0)
        print(json.dumps(figures))
        return
    results = load_results(out)
    if not plot_only:
        console = Console()
        results |= {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": describe_machine(),
            "code": describe_code(),
            "command": " ".join(["python -m benchmarks.growth", *sys.argv[1:]]),
        }
        for s in [float(x) for x in scales.split(",")]:
            with tempfile.TemporaryDirectory(prefix="fraudops-growth-") as tmp:
                steps: dict[str, Any] = {}
                for name in STEPS:
                    with console.status(f"{engine}: {name} at {s:g}x..."):
                        steps[name] = run_step(name, s, engine, Path(tmp))
                    console.print(f"{engine} {s:g}x {name}: {json.dumps(steps[name])}")
            results["engines"].setdefault(engine, {})[f"{s:g}"] = steps
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(
                json.dumps(results, indent=2) + "\n"
            )  # after each scale: a long run keeps its part
    write_plot(results, plot, load_results(before) if before else None)
    print_table(results)


if __name__ == "__main__":
    app()
