"""How long one monitoring run takes on a week of 50,000 scored transactions, and its peak memory.

``python -m benchmarks.monitoring_speed`` (part of ``make bench``). It builds a throwaway project in a
temporary folder: a simulated world whose monitored week holds about 50,000 transactions; a champion
fitted on its 21-day training window and registered in the project's MLflow store with the reference
sample training logs (features and the model's score); six weeks of the champion's verdicts in the
prediction log (SQLite), with the labels released by the judged day. Then, in a fresh process per
round, it times :func:`monitoring.flow.run_monitoring` end to end (champion and reference from
MLflow, the window from the log, Evidently's drift report and its HTML, delayed-label performance, the
decision, the JSON summary and the history line, the run's MLflow copy where the flow keeps one):
first as ``fraudops monitor`` runs it, in a process that has not imported Evidently yet, then once
more in the same process. Each part's time comes from timing the flow's own functions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.measure import cores, describe_machine, own_peak_rss_mb
from benchmarks.project import throwaway_folder, use_project

ROOT = Path(__file__).resolve().parents[1]
START = dt.date(2026, 1, 5)
WARMUP_DAYS, TRAIN_DAYS, LOGGED_DAYS = 30, 21, 42  # logged: the monitored week and the labelled lookback
GOAL_S = 10.0
# the flow's steps, timed where the flow looks them up: (label, [(module, attribute), ...])
PARTS: list[tuple[str, list[tuple[str, str]]]] = [
    ("champion and reference (MLflow)", [("monitoring.flow", "read_champion")]),
    ("read the prediction log (SQLite → pandas)", [("monitoring.flow", "read_predictions")]),
    ("read the feedback log", [("monitoring.flow", "read_feedback")]),
    (
        "drift: Evidently report and HTML",
        [("monitoring.evidence", "detect_drift"), ("monitoring.flow", "detect_drift")],
    ),
    ("prediction drift: Evidently report and HTML", [("monitoring.evidence", "check_prediction_drift")]),
    (
        "performance on the labelled week",
        [("monitoring.evidence", "check_performance"), ("monitoring.flow", "check_performance")],
    ),
    ("monitoring run logged to MLflow", [("monitoring.flow", "log_run")]),
    (
        "summary JSON and history line",
        [("monitoring.flow", "write_summary"), ("monitoring.flow", "append_decision")],
    ),
]

app = typer.Typer(add_completion=False)
console = Console()


def customers_for(rows: int) -> int:
    """Customers whose week holds about ``rows`` transactions (the simulator: ~1.9 a customer a day)."""
    return max(100, round(rows / 7 / 1.91))


def build_project(root: Path, rows: int, seed: int) -> dict[str, Any]:
    """Simulate, fit and register the champion, log its verdicts and the labels; returns what was built."""
    import numpy as np

    from core.clock import last_labelled_day, set_today
    from core.features import compute_features, feature_names
    from core.params import load_params
    from core.simulator import SimulationConfig, make_population, simulate
    from pipelines.train import fit_model, score_frame
    from pipelines.training import reference_sample

    settings = use_project(root)
    params = load_params(ROOT / "params.yaml")
    shutil.copy2(ROOT / "params.yaml", root / "params.yaml")
    features = feature_names(params.features)
    customers = customers_for(rows)
    days = WARMUP_DAYS + TRAIN_DAYS + LOGGED_DAYS
    cfg = SimulationConfig(
        customers=customers, terminals=2 * customers, days=days, start_date=START, seed=seed
    )
    tx, _ = simulate(cfg, make_population(cfg.customers, cfg.terminals, cfg.radius, cfg.population_seed))
    table = tx.join(
        compute_features(
            tx, tx["tx_fraud"].to_numpy(float), params.features, params.data.label_delay_days
        ).drop(columns=["tx_amount"])
    )
    day = table["tx_datetime"].dt.date
    first_logged = START + dt.timedelta(days=WARMUP_DAYS + TRAIN_DAYS)
    today = START + dt.timedelta(days=days)
    train = table[(day >= START + dt.timedelta(days=WARMUP_DAYS)) & (day < first_logged)]
    model = fit_model(train, params)
    threshold = float(np.quantile(score_frame(model, train, features), 0.995))
    register_champion(settings, reference_sample(model, train, features, params), features, threshold)
    logged = table[day >= first_logged]
    scores = score_frame(model, logged, features)
    write_log(settings, logged, features, scores, threshold)
    released = logged[logged["tx_datetime"].dt.date <= last_labelled_day(today, params.data.label_delay_days)]
    write_labels(settings, released, params.data.label_delay_days)
    set_today(settings.clock_file, today)
    week = (logged["tx_datetime"].dt.date >= today - dt.timedelta(days=params.monitoring.window_days)).sum()
    return {
        "today": today.isoformat(),
        "customers": customers,
        "window_rows": int(week),
        "logged_rows": len(logged),
        "labels": len(released),
        "reference_rows": min(len(train), params.monitoring.reference_rows),
        "n_iter": int(model.n_iter_),
    }


def register_champion(settings: Any, reference: Any, features: list[str], threshold: float) -> None:
    """A version aliased champion whose run holds the reference sample and the figures monitoring reads."""
    from core.registry import (
        CHAMPION,
        REFERENCE_ARTIFACT,
        TAG_DATA_VERSION,
        TAG_FEATURES,
        TAG_LABEL_DELAY,
        TAG_THRESHOLD,
        registry_client,
    )
    from pipelines.tracking import ensure_experiment

    client = registry_client(settings.tracking_uri)
    run_id = client.create_run(ensure_experiment(settings)).info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        reference.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
    client.log_metric(run_id, "test_average_precision", 0.6)
    client.set_terminated(run_id)
    client.create_registered_model(settings.model_name)
    tags = {
        TAG_THRESHOLD: str(threshold),
        TAG_FEATURES: json.dumps(features),
        TAG_LABEL_DELAY: "7",
        TAG_DATA_VERSION: "bench",
    }
    version = client.create_model_version(
        settings.model_name, f"runs:/{run_id}/model", run_id=run_id, tags=tags
    )
    client.set_registered_model_alias(settings.model_name, CHAMPION, version.version)


def write_log(settings: Any, rows: Any, features: list[str], scores: Any, threshold: float) -> None:
    """The champion's verdicts, as the API logs them (one day per transaction, in order)."""
    from core.predlog import append_predictions

    log = rows[["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]].assign(
        **{f"f_{name}": rows[name].astype(float) for name in features},
        fraud_probability=scores,
        is_fraud=scores >= threshold,
        threshold=threshold,
        model_version="1",
        scored_at=rows["tx_datetime"].map(lambda t: t.isoformat()),
    )
    log["tx_datetime"] = log["tx_datetime"].map(lambda t: t.isoformat())
    for day_rows in (group for _, group in log.groupby(rows["tx_datetime"].dt.date)):
        append_predictions(settings.prediction_log, day_rows.to_dict("records"))


def write_labels(settings: Any, rows: Any, delay_days: int) -> None:
    """The labels of ``rows``, received ``delay_days`` after their transactions."""
    from core.predlog import append_feedback

    labels = rows[["transaction_id", "tx_fraud", "tx_fraud_scenario"]].assign(
        received_on=(rows["tx_datetime"].dt.date + dt.timedelta(days=delay_days)).astype(str)
    )
    append_feedback(settings.prediction_log, labels.to_dict("records"))


# --------------------------------------------------------------------------------------------- timing


@contextlib.contextmanager
def timed_parts() -> Iterator[dict[str, float]]:
    """Time the flow's steps while the block runs: each found attribute is wrapped, then restored."""
    import importlib

    seconds: dict[str, float] = {}
    patched: list[tuple[Any, str, Any]] = []
    for label, candidates in PARTS:
        for module_name, attribute in candidates:
            module = importlib.import_module(module_name)
            original = getattr(module, attribute, None)
            if original is None:
                continue
            setattr(module, attribute, _timer(original, label, seconds))
            patched.append((module, attribute, original))
    try:
        yield seconds
    finally:
        for module, attribute, original in patched:
            setattr(module, attribute, original)


def _timer(fn: Callable[..., Any], label: str, seconds: dict[str, float]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - start

    return wrapper


def measure(root: Path, today: str) -> dict[str, Any]:
    """In this (fresh) process: import the flow's module, then time two monitoring runs."""
    start = time.perf_counter()
    settings = use_project(root)
    from core.params import load_params
    from monitoring.flow import run_monitoring

    params = load_params(root / "params.yaml")
    import_s = time.perf_counter() - start
    runs = []
    for _ in range(2):
        with timed_parts() as parts:
            start, cpu = time.perf_counter(), time.process_time()
            summary = run_monitoring(settings, params, dt.date.fromisoformat(today), None)
            total, cpu = time.perf_counter() - start, time.process_time() - cpu
        runs.append(
            {
                "seconds": total,
                "cpu_seconds": cpu,  # this process's own: other processes on the machine do not inflate it
                "parts": dict(parts),
                "rows": summary.rows,
                "action": summary.decision.action,
            }
        )
    return {"import_s": import_s, "cold": runs[0], "warm": runs[1], "peak_rss_mb": own_peak_rss_mb()}


def run_round(root: Path, today: str, bytecode_cache: bool) -> dict[str, Any]:
    """One round in a child process, so its imports are cold and its peak memory is its own.

    Python compiles a module from source unless it finds the module's cached bytecode: a user's
    Python caches it on the first run (and the Docker image at build time), while machines that set
    PYTHONDONTWRITEBYTECODE compile every import every time. Both are measured from a cache of the
    round's own (PYTHONPYCACHEPREFIX), kept between rounds or left empty, whatever this machine does.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(root / ("pycache" if bytecode_cache else "no-pycache"))
    if not bytecode_cache:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.monitoring_speed", "--measure", str(root), "--today", today],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the measured run failed:\n{out.stderr[-4000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def print_report(built: dict[str, Any], rounds: list[dict[str, Any]], cache: str) -> None:
    """Median over the rounds of the total and of each part, cold and warm."""
    med = statistics.median
    table = Table(
        title=f"monitoring run — {built['window_rows']:,} rows in the window, {built['logged_rows']:,} in the log, "
        f"{built['reference_rows']:,} reference rows — median of {len(rounds)} rounds — {cache} — "
        f"{dt.date.today()}, {cores()} cores"
    )
    for col in ("part", "first run in a process (s)", "second run (s)"):
        table.add_column(col)
    for label, _ in PARTS:
        cold = [r["cold"]["parts"][label] for r in rounds if label in r["cold"]["parts"]]
        warm = [r["warm"]["parts"][label] for r in rounds if label in r["warm"]["parts"]]
        if cold:
            table.add_row(label, f"{med(cold):.2f}", f"{med(warm):.2f}")
    rest = {k: med([r[k]["seconds"] - sum(r[k]["parts"].values()) for r in rounds]) for k in ("cold", "warm")}
    table.add_row(
        "everything else (windows, labels join, policy)", f"{rest['cold']:.2f}", f"{rest['warm']:.2f}"
    )
    cold_total = med([r["cold"]["seconds"] for r in rounds])
    warm_total = med([r["warm"]["seconds"] for r in rounds])
    table.add_row(
        "[bold]run_monitoring end to end[/]", f"[bold]{cold_total:.2f}[/]", f"[bold]{warm_total:.2f}[/]"
    )
    cpu = {k: med([r[k]["cpu_seconds"] for r in rounds]) for k in ("cold", "warm")}
    table.add_row("its CPU time (this process)", f"{cpu['cold']:.2f}", f"{cpu['warm']:.2f}")
    console.print(table)
    console.print(
        f"importing monitoring.flow: {med([r['import_s'] for r in rounds]):.2f} s; "
        f"peak memory of the measuring process: {med([r['peak_rss_mb'] for r in rounds]):,.0f} MB; "
        f"decision: {rounds[0]['cold']['action']}; goal ≤ {GOAL_S:.0f} s end to end: "
        + ("[green]met[/]" if cold_total <= GOAL_S else "[red]missed[/]")
    )


@app.command()
def main(
    rows: Annotated[
        int, typer.Option(min=1000, help="Scored transactions in the monitored week (about).")
    ] = 50_000,
    rounds: Annotated[int, typer.Option(min=1, help="Measured rounds, each in a fresh process.")] = 3,
    uncached_rounds: Annotated[int, typer.Option(min=0, help="Further rounds without a bytecode cache.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the simulated transactions.")] = 0,
    keep: Annotated[bool, typer.Option(help="Keep the throwaway project and print its folder.")] = False,
    out: Annotated[Path, typer.Option(help="Where the figures of every round are written.")] = Path(
        "reports/bench_monitoring.json"
    ),
    measure_in: Annotated[Path | None, typer.Option("--measure", hidden=True)] = None,
    today: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Time a monitoring run on a week of about ROWS scored transactions (see the module docstring)."""
    if measure_in is not None and today is not None:
        print(json.dumps(measure(measure_in, today)))
        return
    with throwaway_folder("fraudops-bench-monitoring-", keep) as root:
        with console.status("building the project (simulation, champion, prediction log)..."):
            start = time.perf_counter()
            built = build_project(root, rows, seed)
        console.print(
            f"project built in {time.perf_counter() - start:.1f} s: {built['customers']:,} customers, "
            f"{built['window_rows']:,} rows in the monitored week, {built['logged_rows']:,} in the log, "
            f"{built['labels']:,} labels, champion with {built['n_iter']} trees"
        )
        with console.status("a first round fills the bytecode cache (not measured)..."):
            run_round(root, built["today"], bytecode_cache=True)
        results = []
        for i in range(rounds):
            with console.status(f"round {i + 1}/{rounds}..."):
                results.append(run_round(root, built["today"], bytecode_cache=True))
        print_report(built, results, "Python's bytecode cache filled, as on a user's second run")
        uncached = []
        if uncached_rounds:
            for i in range(uncached_rounds):
                with console.status(f"round {i + 1}/{uncached_rounds} without a bytecode cache..."):
                    uncached.append(run_round(root, built["today"], bytecode_cache=False))
            print_report(built, uncached, "no bytecode cache: every import compiled from source")
        out.parent.mkdir(parents=True, exist_ok=True)
        machine = describe_machine() | {"date": dt.date.today().isoformat()}
        figures = {"built": built, "rounds": results, "uncached_rounds": uncached, "machine": machine}
        out.write_text(json.dumps(figures, indent=2), encoding="utf-8")
        console.print(f"figures of every round: {out}")


if __name__ == "__main__":
    app()
