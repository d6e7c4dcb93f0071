"""False alarms and detection delay of the monitor (``python -m benchmarks.monitoring``, part of ``make bench``).

One simulated world (the demo's size by default: 2,000 customers, 4,000 terminals) with a history
long enough for full validation folds trains one champion exactly as the ``train`` stage does (the
search on validation folds, the threshold, the validation figures) and keeps the reference sample
training logs (rows of the training window with the champion's scores). Serving starts the day after
the history. Every seed then continues that same world from there, so the champion is shared and
each seed is an independent stretch of traffic it scores:

- **control**: the baseline process under another seed; judged once a week (whole weeks) for five
  weeks. A seed "triggers" when any of its judgements is a retrain decision (goal: 0 of 20).
- **holiday** and **new-pattern**: two normal weeks, then the scenario; judged every day from the
  scenario's first day until the first retrain decision. The delay is the number of days from the
  scenario's start to that decision.

Each judgement is the monitoring flow's own :func:`monitoring.evidence.judge_window` on the window it
would read from the prediction log: the features and scores of the last ``window_days`` days, and
the labelled week that ended a label delay ago, without cards already known to be compromised, and
only rows the champion scored. Features are computed over the whole history with every label
released on time, as the service computes them from its feedback; scores are scikit-learn's, which
the ONNX graph serving runs matches to 2e-7. No cool-down applies: every seed starts from a champion
that has never been retrained.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from benchmarks.measure import describe_code, describe_machine
from core.features import feature_names
from core.params import Params, load_params

app = typer.Typer(add_completion=False)
START = dt.date(2026, 1, 1)
LEAD_DAYS = 14  # normal traffic scored before a drift scenario starts: whole labelled weeks to judge


@dataclass(frozen=True)
class World:
    """A simulated history: its population, transactions with labels, incidents, and the day serving starts."""

    population: Any
    history: pd.DataFrame
    incidents: pd.DataFrame
    serving_start: dt.date
    customers: int
    terminals: int


def make_world(customers: int, terminals: int, days: int, seed: int) -> World:
    """Simulate ``days`` days of history (population seeded as the CLI's default)."""
    from core.simulator import SimulationConfig, make_population, simulate

    cfg = SimulationConfig(customers=customers, terminals=terminals, days=days, start_date=START, seed=seed)
    population = make_population(cfg.customers, cfg.terminals, cfg.radius, cfg.population_seed)
    history, incidents = simulate(cfg, population)
    return World(population, history, incidents, START + dt.timedelta(days=days), customers, terminals)


def continue_world(world: World, periods: list[tuple[int, str, int]]) -> pd.DataFrame:
    """The days after the history, period by period: (days, scenario, seed); open incidents carry over."""
    from core.simulator import SimulationConfig, simulate

    start, incidents, parts = world.serving_start, world.incidents, []
    for days, scenario, seed in periods:
        still_open = incidents[pd.to_datetime(incidents["end"]).dt.date > start]
        cfg = SimulationConfig(
            customers=world.customers,
            terminals=world.terminals,
            days=days,
            start_date=start,
            seed=seed,
            scenarios=(scenario,),
        )
        tx, incidents = simulate(cfg, world.population, still_open)
        parts.append(tx)
        start += dt.timedelta(days=days)
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class Trained:
    """The champion as monitoring reads it, and the fitted model that scores the traffic."""

    champion: Any
    model: Any
    summary: dict[str, Any]


def train_champion(world: World, params: Params, threads: int | None) -> Trained:
    """Train as the stage does on the labels released by the day serving starts; keep the reference."""
    from core.clock import last_labelled_day
    from core.metrics import card_k
    from core.registry import ModelInfo
    from core.schemas import LABEL_COLUMNS, TRANSACTION_COLUMNS
    from monitoring.champion import Champion, expected_from_metrics
    from pipelines.features import build_feature_table
    from pipelines.train_stage import train_on_table
    from pipelines.training import reference_sample

    tx = world.history
    newest = last_labelled_day(world.serving_start, params.data.label_delay_days)
    released = (tx["tx_datetime"] < pd.Timestamp(newest + dt.timedelta(days=1), tz="UTC")).to_numpy()
    table = build_feature_table(tx[TRANSACTION_COLUMNS], tx.loc[released, LABEL_COLUMNS], params)
    result = train_on_table(table, params, folds=True, export=False, threads=threads)
    validation = result.selection.validation_summary()
    # what training logs to MLflow and monitoring reads back: validation figures, prequential folds
    logged = validation | {f"test_{k}": v for k, v in result.metrics.items() if k.startswith("prequential_")}
    info = ModelInfo(
        name="benchmark",
        version="1",
        alias="champion",
        run_id="-",
        threshold=result.selection.threshold,
        features=feature_names(params.features),
        label_delay_days=params.data.label_delay_days,
        data_version="-",
    )
    champion = Champion(
        info=info,
        reference=reference_sample(result.model, result.train, info.features, params),
        expected=expected_from_metrics(logged),
        k=card_k(world.customers, params.evaluation.k_per_5000_customers),
    )
    summary = {
        "windows": {k: str(v) for k, v in result.windows.__dict__.items()},
        "hyperparameters": result.selection.hyper.model_dump(),
        "threshold": result.selection.threshold,
        "test_average_precision": result.metrics["average_precision"],
        "validation": {"folds": result.selection.fold_metrics, **validation},
        "prequential": {
            k: v for k, v in logged.items() if k.startswith("test_prequential_average_precision")
        },
        "expected": asdict(champion.expected) if champion.expected else None,
    }
    return Trained(champion, result.model, summary)


def score_traffic(world: World, traffic: pd.DataFrame, trained: Trained, params: Params) -> pd.DataFrame:
    """The traffic's rows with their features (over history + traffic, labels on time) and the champion's score."""
    from core.features import compute_features, horizon_days
    from core.registry import SCORE_COLUMN
    from pipelines.train import score_frame

    # the history the features reach back to (see core.features.horizon_days), then the traffic
    horizon = dt.timedelta(days=horizon_days(params.features, params.data.label_delay_days) + 1)
    history = world.history[world.history["tx_datetime"].dt.date >= world.serving_start - horizon]
    everything = pd.concat([history, traffic], ignore_index=True)
    features = compute_features(
        everything, everything["tx_fraud"].to_numpy(), params.features, params.data.label_delay_days
    )
    scored = everything.join(features.drop(columns=["tx_amount"])).iloc[len(history) :]
    features_in_order = trained.champion.info.features
    return scored.assign(**{SCORE_COLUMN: score_frame(trained.model, scored, features_in_order)})


def judge_day(scored: pd.DataFrame, trained: Trained, params: Params, today: dt.date) -> dict[str, Any]:
    """The monitoring flow's judgement of the window ending yesterday, as a small record."""
    from core.clock import last_labelled_day
    from core.registry import SCORE_COLUMN
    from monitoring.evidence import judge_window
    from monitoring.performance import drop_known_cards

    days = scored["tx_datetime"].dt.date
    window = dt.timedelta(days=params.monitoring.window_days)
    week_end = last_labelled_day(today, params.data.label_delay_days)
    week_start = week_end - window + dt.timedelta(days=1)
    current = scored.loc[
        (days >= today - window) & (days < today), [*trained.champion.info.features, SCORE_COLUMN]
    ]
    labelled = drop_known_cards(scored[days <= week_end], week_start, week_end, params)
    evidence, decision = judge_window(trained.champion, current, labelled, params, today, None)
    drift, perf = evidence.drift, evidence.performance
    return {
        "today": today.isoformat(),
        "rows": evidence.rows,
        "action": decision.action,
        "reasons": decision.reasons,
        "dataset_drift": bool(drift and drift.drifted),
        "drift_share": drift.share if drift else None,
        "drifted_columns": drift.drifted_columns if drift else [],
        "prediction_drift": drift.prediction.model_dump() if drift and drift.prediction else None,
        "performance_drop": any(r.startswith("performance drop") for r in decision.reasons),
        "live_average_precision": perf.average_precision,
        "labelled_frauds": perf.frauds,
        "floor": perf.floor,
    }


def run_control(world: World, trained: Trained, params: Params, seed: int, weeks: int) -> dict[str, Any]:
    """A control stretch of ``weeks`` weeks, judged at the end of each week."""
    traffic = continue_world(world, [(7 * weeks, "control", 1000 + seed)])
    scored = score_traffic(world, traffic, trained, params)
    judged = [
        judge_day(scored, trained, params, world.serving_start + dt.timedelta(days=7 * week))
        for week in range(1, weeks + 1)
    ]
    retrains = [j for j in judged if j["action"] == "retrain"]
    return {
        "seed": seed,
        "transactions": len(traffic),
        "triggered": bool(retrains),
        "first_trigger": retrains[0] if retrains else None,
        "judgements": judged,
    }


EVIDENCE = ("dataset_drift", "prediction_drift", "performance_drop")


def alarms_of(day: dict[str, Any]) -> dict[str, bool]:
    """Which kinds of evidence alarmed in one judgement (whether or not the policy retrains on them)."""
    prediction = day["prediction_drift"]
    return {
        "dataset_drift": day["dataset_drift"],
        "prediction_drift": bool(prediction and prediction["drifted"]),
        "performance_drop": day["performance_drop"],
    }


def run_drift(
    world: World, trained: Trained, params: Params, scenario: str, seed: int, days: int
) -> dict[str, Any]:
    """Normal weeks, then ``scenario`` judged daily for up to ``days`` days.

    The delay is the number of days to the first retrain decision; judging goes on until every kind
    of evidence has alarmed at least once (or the days run out), to show when each would have.
    """
    traffic = continue_world(world, [(LEAD_DAYS, "control", 2000 + seed), (days, scenario, 3000 + seed)])
    scored = score_traffic(world, traffic, trained, params)
    start = world.serving_start + dt.timedelta(days=LEAD_DAYS)
    judged: list[dict[str, Any]] = []
    first: dict[str, int | None] = dict.fromkeys(EVIDENCE)
    delay: int | None = None
    for offset in range(1, days + 1):
        judged.append(judge_day(scored, trained, params, start + dt.timedelta(days=offset)))
        for kind, alarmed in alarms_of(judged[-1]).items():
            if alarmed and first[kind] is None:
                first[kind] = offset
        if judged[-1]["action"] == "retrain" and delay is None:
            delay = offset
        if delay is not None and all(v is not None for v in first.values()):
            break
    return {
        "scenario": scenario,
        "seed": seed,
        "start": start.isoformat(),
        "delay_days": delay,
        "first_day_of": first,  # days from the start at which each kind of evidence first alarmed
        "trigger": judged[delay - 1]["reasons"] if delay else None,
        "judgements": judged,
    }


def describe_delays(runs: list[dict[str, Any]]) -> str:
    """'median (min–max)' of the delays, with how many seeds were not detected."""
    delays = [r["delay_days"] for r in runs if r["delay_days"] is not None]
    missed = len(runs) - len(delays)
    text = f"{statistics.median(delays):g} ({min(delays)}–{max(delays)})" if delays else "—"
    return text + (f", {missed} not detected" if missed else "")


def describe_evidence(runs: list[dict[str, Any]], kind: str) -> str:
    """When one kind of evidence first alarmed: 'median (min–max)' days, and in how many seeds it never did."""
    days = [r["first_day_of"][kind] for r in runs if r["first_day_of"][kind] is not None]
    text = f"{statistics.median(days):g} ({min(days)}–{max(days)})" if days else "never"
    missed = len(runs) - len(days)
    return text + (f", never in {missed}" if days and missed else "")


def first_triggers(triggers: list[list[str]]) -> str:
    """Which evidence made each first retrain decision (the reasons' leading words, counted)."""
    counts: dict[str, int] = {}
    for reasons in triggers:
        for reason in reasons:
            kind = reason.split(":")[0]
            counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{kind} ×{n}" for kind, n in sorted(counts.items())) or "—"


@app.command()
def main(
    customers: Annotated[int, typer.Option(help="Customers in the simulated world.")] = 2000,
    terminals: Annotated[int, typer.Option(help="Terminals in the simulated world.")] = 4000,
    history_days: Annotated[
        int, typer.Option(help="Days of history before serving starts (100: full validation folds).")
    ] = 100,
    control_seeds: Annotated[int, typer.Option(help="Control stretches (seeds 1..N).")] = 20,
    control_weeks: Annotated[int, typer.Option(help="Weeks judged in each control stretch.")] = 5,
    drift_seeds: Annotated[int, typer.Option(help="Stretches of each drift scenario (seeds 1..N).")] = 3,
    drift_days: Annotated[int, typer.Option(help="Days of a drift scenario judged at most.")] = 35,
    threads: Annotated[int, typer.Option(help="Training threads (1 is fastest on busy cores).")] = 1,
    out: Annotated[Path, typer.Option(help="Where every judgement is written.")] = Path(
        "reports/bench_monitoring_alarms.json"
    ),
) -> None:
    """Count the control stretches that trigger a retrain, and the days each drift scenario takes to."""
    console = Console(width=max(Console().width, 140))  # the table's 8 columns
    params = load_params(Path("params.yaml"))
    began = time.perf_counter()
    with console.status(f"simulating {history_days} days of history and training the champion..."):
        world = make_world(customers, terminals, history_days, seed=0)
        trained = train_champion(world, params, threads)
    expected = trained.champion.expected
    console.log(
        f"champion: test AP {trained.summary['test_average_precision']:.3f}; expected AP "
        f"{expected.average_precision:.3f} ± {expected.average_precision_std or float('nan'):.3f} "
        f"over {expected.folds} {expected.source}; threshold {trained.champion.info.threshold:.3f}"
    )
    control = []
    for seed in range(1, control_seeds + 1):
        with console.status(f"control seed {seed}/{control_seeds}..."):
            control.append(run_control(world, trained, params, seed, control_weeks))
        first = control[-1]["first_trigger"]
        console.log(f"control seed {seed}: " + ("; ".join(first["reasons"]) if first else "no retrain"))
    drift: dict[str, list[dict[str, Any]]] = {}
    for scenario in ("holiday", "new-pattern"):
        drift[scenario] = []
        for seed in range(1, drift_seeds + 1):
            with console.status(f"{scenario} seed {seed}/{drift_seeds}..."):
                drift[scenario].append(run_drift(world, trained, params, scenario, seed, drift_days))
            run = drift[scenario][-1]
            console.log(f"{scenario} seed {seed}: delay {run['delay_days']} days; {run['first_day_of']}")
    elapsed = time.perf_counter() - began
    report = {
        "date": dt.date.today().isoformat(),
        "machine": describe_machine() | {"git_commit": describe_code()["commit"] or "unknown"},
        "seconds": elapsed,
        "world": {"customers": customers, "terminals": terminals, "history_days": history_days},
        "monitoring": params.monitoring.model_dump(),
        "champion": trained.summary,
        "control": {
            "seeds": control_seeds,
            "weeks": control_weeks,
            "triggered": sum(r["triggered"] for r in control),
            "runs": control,
        },
        "drift": {
            scenario: {"delays": [r["delay_days"] for r in runs], "runs": runs}
            for scenario, runs in drift.items()
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print_table(console, report, drift)
    console.print(f"{elapsed:.0f} s; every judgement: {out}")


def control_alarms(control: dict[str, Any], kind: str) -> str:
    """In how many of the control weeks one kind of evidence alarmed."""
    weeks = control["seeds"] * control["weeks"]
    alarmed = sum(alarms_of(day)[kind] for run in control["runs"] for day in run["judgements"])
    return f"in {alarmed} of {weeks} weeks" if alarmed else f"never in {weeks} weeks"


def print_table(console: Console, report: dict[str, Any], drift: dict[str, list[dict[str, Any]]]) -> None:
    """False alarms and delays, one row per scenario."""
    world = report["world"]
    table = Table(
        title=f"Monitoring: false alarms and detection delay ({world['customers']:,} customers, one champion;"
        " delays and first days: median (min–max) from the scenario's start)"
    )
    for col in (
        "scenario",
        "stretches",
        "retrains",
        "delay, days",
        "first trigger",
        *(f"{kind.replace('_', ' ')} from day" for kind in EVIDENCE),
    ):
        table.add_column(col)
    control = report["control"]
    table.add_row(
        "control (goal: 0)",
        f"{control['seeds']} × {control['weeks']} weeks",
        f"{control['triggered']} / {control['seeds']}",
        "—",
        first_triggers([r["first_trigger"]["reasons"] for r in control["runs"] if r["triggered"]]),
        *(control_alarms(control, kind) for kind in EVIDENCE),
    )
    for scenario, runs in drift.items():
        table.add_row(
            scenario,
            f"{len(runs)}, daily",
            f"{sum(r['delay_days'] is not None for r in runs)} / {len(runs)}",
            describe_delays(runs),
            first_triggers([r["trigger"] for r in runs if r["trigger"]]),
            *(describe_evidence(runs, kind) for kind in EVIDENCE),
        )
    console.print(table)


if __name__ == "__main__":
    app()
