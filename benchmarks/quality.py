"""Model quality at book scale with the Fraud Detection Handbook's protocol, beside the logistic baseline.

``python -m benchmarks.quality`` (part of ``make bench``). For each data seed: simulate 183 days of
5,000 customers and 10,000 terminals, compute the 15 features, then for each of 4 prequential folds
run training exactly as the ``train`` stage does (hyperparameter search and threshold on validation
folds inside the training window, never on the test week), and score the test week. The logistic
baseline is fitted on the same training windows. Prints mean ± std over folds and seeds.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from core.params import Params, load_params

BOOK_CUSTOMERS, BOOK_TERMINALS, BOOK_DAYS = 5000, 10000, 183
METRICS = ("roc_auc", "average_precision", "card_precision_at_k")
LABELS = {"roc_auc": "ROC AUC", "average_precision": "AP", "card_precision_at_k": "CP@100"}
TARGET = {"roc_auc": 0.87, "average_precision": 0.69, "card_precision_at_k": 0.305}
app = typer.Typer(add_completion=False)


def book_table(seed: int, params: Params) -> pd.DataFrame:
    """A book-scale world with its feature table (every label known)."""
    from core.features import compute_features
    from core.simulator import SimulationConfig, make_population, simulate

    cfg = SimulationConfig(customers=BOOK_CUSTOMERS, terminals=BOOK_TERMINALS, days=BOOK_DAYS, seed=seed)
    tx, _ = simulate(cfg, make_population(cfg.customers, cfg.terminals, cfg.radius, cfg.population_seed))
    feats = compute_features(
        tx, tx["tx_fraud"].to_numpy(float), params.features, params.data.label_delay_days
    )
    return tx.join(feats.drop(columns=["tx_amount"])).assign(tx_fraud=tx["tx_fraud"].astype(float))


def protocol(params: Params, train_days: int) -> Params:
    """``params`` with the handbook's windows: ``train_days`` of training, a week's gap, a week's test."""
    evaluation = params.evaluation.model_copy(
        update={"train_days": train_days, "gap_days": 7, "test_days": 7}
    )
    return params.model_copy(update={"evaluation": evaluation})


def run_folds(table: pd.DataFrame, params: Params, folds: int) -> list[dict[str, Any]]:
    """Train as the stage does on data ending one test week earlier each fold; score model and baseline."""
    from core.features import feature_names
    from pipelines.train import evaluate_model, fit_baseline
    from pipelines.train_stage import train_on_table

    features = feature_names(params.features)
    days = table["tx_datetime"].dt.date
    last = days.max()
    population = int(table["customer_id"].nunique())
    out = []
    for fold in range(folds):
        end = last - dt.timedelta(days=fold * params.evaluation.test_days)
        part = table[days <= end]
        start = time.perf_counter()
        result = train_on_table(part, params, folds=False, export=False)
        seconds = time.perf_counter() - start
        windows, selection, metrics = result.windows, result.selection, result.metrics
        baseline = evaluate_model(
            fit_baseline(result.train, params), result.test, features, selection.threshold, params, population
        )
        out.append(
            {
                "fold": fold,
                "test_window": windows.as_tags()["test_window"],
                "seconds": seconds,
                "hyperparameters": selection.hyper.model_dump(),
                "threshold": selection.threshold,
                "model": {k: metrics[k] for k in (*METRICS, "precision_at_threshold", "recall_at_threshold")},
                "baseline": {k: baseline[k] for k in METRICS},
                "random": {k: metrics[f"{k}_random"] for k in METRICS},
            }
        )
    return out


def summarise(results: list[dict[str, Any]], who: str) -> dict[str, str]:
    return {
        key: f"{np.mean([r[who][key] for r in results]):.3f} ± {np.std([r[who][key] for r in results]):.3f}"
        for key in METRICS
    }


@app.command()
def main(
    seeds: Annotated[list[int] | None, typer.Option("--seed", help="Data seeds (default 0 1 2).")] = None,
    train_days: Annotated[
        list[int] | None, typer.Option("--train-days", help="Training window lengths (default 7 21).")
    ] = None,
    folds: Annotated[int, typer.Option(help="Prequential folds (test weeks) per seed.")] = 4,
    out: Annotated[Path, typer.Option(help="Where to write every fold's figures.")] = Path(
        "reports/quality.json"
    ),
) -> None:
    """Measure the model and the logistic baseline at book scale; print mean ± std over folds and seeds."""
    seeds, train_days = seeds or [0, 1, 2], train_days or [7, 21]
    console = Console()
    base = load_params(Path("params.yaml"))
    results: dict[str, list[dict[str, Any]]] = {str(d): [] for d in train_days}
    for seed in seeds:
        with console.status(f"seed {seed}: simulating book scale and computing features..."):
            table = book_table(seed, base)
        for days in train_days:
            with console.status(f"seed {seed}: {folds} folds, {days}-day training windows..."):
                for row in run_folds(table, protocol(base, days), folds):
                    results[str(days)].append({"seed": seed, **row})
            console.log(
                f"seed {seed}, {days}-day training: {summarise(results[str(days)][-folds:], 'model')}"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    table_out = Table(
        title=f"quality at book scale — {len(seeds)} seeds x {folds} folds, mean ± std (target in brackets)"
    )
    for col in ("training window", "who", *(f"{LABELS[k]} ({TARGET[k]})" for k in METRICS)):
        table_out.add_column(col)
    for window, rows in results.items():
        for who in ("model", "baseline", "random"):
            name = {"model": "model", "baseline": "logistic baseline", "random": "random"}[who]
            table_out.add_row(f"{window} days", name, *summarise(rows, who).values())
    console.print(table_out)
    console.print(f"every fold's figures: {out}")


if __name__ == "__main__":
    app()
