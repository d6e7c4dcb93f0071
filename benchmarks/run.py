"""Run each benchmark in its own process (so peak memory is its own) and print a table.

``python -m benchmarks.run`` (or ``make bench``). Sizes are the Fraud Detection Handbook's book scale.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.measure import describe_machine, own_peak_rss_mb

BOOK_CUSTOMERS, BOOK_TERMINALS, BOOK_DAYS = 5000, 10000, 183
app = typer.Typer(add_completion=False)


def time_simulation(customers: int, terminals: int, days: int) -> dict[str, float]:
    """Simulate a world in memory (population and transactions) and time it."""
    from core.simulator import SimulationConfig, make_population, simulate

    cfg = SimulationConfig(customers=customers, terminals=terminals, days=days, seed=0)
    start = time.perf_counter()
    pop = make_population(cfg.customers, cfg.terminals, cfg.radius, cfg.population_seed)
    tx, _ = simulate(cfg, pop)
    return {
        "seconds": time.perf_counter() - start,
        "rows": len(tx),
        "fraud_rate": float(tx["tx_fraud"].mean()),
    }


def bench_simulate() -> dict[str, float]:
    """Simulate book scale in memory (183 days, 5,000 customers, 10,000 terminals)."""
    return time_simulation(BOOK_CUSTOMERS, BOOK_TERMINALS, BOOK_DAYS)


def bench_simulate_demo() -> dict[str, float]:
    """Simulate the demo's world in memory: 2,000 customers, 4,000 terminals, 133 days (84 + 14 + 35)."""
    return time_simulation(2000, 4000, 133)


def bench_features() -> dict[str, float]:
    """The 15 features over book scale."""
    from core.features import compute_features
    from core.params import load_params
    from core.simulator import SimulationConfig, make_population, simulate

    params = load_params(Path("params.yaml"))
    cfg = SimulationConfig(customers=BOOK_CUSTOMERS, terminals=BOOK_TERMINALS, days=BOOK_DAYS, seed=0)
    tx, _ = simulate(cfg, make_population(cfg.customers, cfg.terminals, cfg.radius, cfg.population_seed))
    start = time.perf_counter()
    compute_features(tx, tx["tx_fraud"].to_numpy(float), params.features, params.data.label_delay_days)
    return {"seconds": time.perf_counter() - start, "rows": len(tx)}


def bench_demo_training() -> dict[str, float]:
    """Fit the model on the demo's training window size (21 days, 2,000 customers)."""
    import numpy as np

    from core.features import compute_features
    from core.params import load_params
    from core.simulator import SimulationConfig, make_population, simulate
    from pipelines.train import fit_model

    params = load_params(Path("params.yaml"))
    cfg = SimulationConfig(customers=2000, terminals=4000, days=58, seed=0)
    tx, _ = simulate(cfg, make_population(cfg.customers, cfg.terminals, cfg.radius, cfg.population_seed))
    feats = compute_features(
        tx, tx["tx_fraud"].to_numpy(float), params.features, params.data.label_delay_days
    )
    table = tx.join(feats.drop(columns=["tx_amount"]))
    train = table[table["tx_datetime"] >= table["tx_datetime"].max() - np.timedelta64(21, "D")]
    start = time.perf_counter()
    model = fit_model(train, params)
    return {"seconds": time.perf_counter() - start, "rows": len(train), "n_iter": int(model.n_iter_)}


def bench_book_training() -> dict[str, float]:
    """Features and the whole train stage over book scale: search, fit, folds with the baseline, ONNX."""
    from core.features import compute_features
    from core.params import load_params
    from core.simulator import SimulationConfig, make_population, simulate
    from pipelines.train_stage import train_on_table

    params = load_params(Path("params.yaml"))
    cfg = SimulationConfig(customers=BOOK_CUSTOMERS, terminals=BOOK_TERMINALS, days=BOOK_DAYS, seed=0)
    tx, _ = simulate(cfg, make_population(cfg.customers, cfg.terminals, cfg.radius, cfg.population_seed))
    start = time.perf_counter()
    feats = compute_features(
        tx, tx["tx_fraud"].to_numpy(float), params.features, params.data.label_delay_days
    )
    table = tx.join(feats.drop(columns=["tx_amount"]))
    features_s = time.perf_counter() - start
    result = train_on_table(table, params)  # search, fit, folds with the baseline, ONNX export
    metrics = result.metrics
    return {
        "seconds": time.perf_counter() - start,
        "features_s": features_s,
        "rows": len(table),
        "candidates": len(result.selection.candidates),
        "test_ap": metrics["average_precision"],
        "folds_ap_mean": metrics["prequential_average_precision_mean"],
        "baseline_folds_ap_mean": metrics["baseline_prequential_average_precision_mean"],
    }


BENCHMARKS: dict[str, Callable[[], dict[str, float]]] = {
    "simulate (book scale)": bench_simulate,
    "simulate (demo scale)": bench_simulate_demo,
    "features (book scale)": bench_features,
    "fit model (demo window)": bench_demo_training,
    "features + train stage (book scale)": bench_book_training,
}


@app.command()
def main(
    one: str | None = typer.Option(None, help="Run one benchmark in this process and print JSON."),
) -> None:
    """Run every benchmark in a child process and print seconds and peak memory."""
    if one is not None:
        result = BENCHMARKS[one]()
        result["peak_rss_mb"] = own_peak_rss_mb()
        print(json.dumps(result))
        return
    console = Console()
    machine = describe_machine()
    table = Table(
        title=f"fraudops benchmarks — {dt.date.today()} — {machine['cpu']}, {machine['cores']} cores"
    )
    for col in ("benchmark", "seconds", "peak memory (MB)", "details"):
        table.add_column(col)
    for name in BENCHMARKS:
        with console.status(f"running {name}..."):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.run", "--one", name],
                capture_output=True,
                text=True,
                check=True,
            )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        details = ", ".join(f"{k}={v:,.4g}" for k, v in result.items() if k not in ("seconds", "peak_rss_mb"))
        table.add_row(name, f"{result['seconds']:.2f}", f"{result['peak_rss_mb']:,.0f}", details)
    console.print(table)


if __name__ == "__main__":
    app()
