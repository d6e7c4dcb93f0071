"""Load under a card-testing burst: one card's requests against spread traffic, on a real server.

``python -m benchmarks.burst`` (part of ``make bench``; ``--help`` lists the durations and sizes).

Fraudsters test stolen cards with bursts of small transactions on one card. Scoring must cost the same
whatever a card's history inside the windows holds, or a burst slows the service for everyone. The
benchmark builds the throwaway project of :mod:`benchmarks.serving` (seeded simulation, ingest, the
``train`` stage, a registered champion), starts ``fraudops serve`` (one uvicorn worker, pinned to one
core) and loads ``POST /v1/score`` with wrk (the ``score.lua`` script, pinned to the other core):

1. spread traffic: the simulated traffic pool (many cards), timestamps at the history's rate;
2. a burst: the same card on every request, small amounts, a few terminals, timestamps a fraction of
   a second apart, so the card's windows grow by every request (120,000 rows in a minute).

Each phase runs in consecutive wrk slices (6 x 10 s by default) on the same server, so its requests/s
per slice show whether the cost grows with the card's history. Goals: the burst within 10 % of spread
traffic, and its second half within 10 % of its first. Requests per second of the server's CPU time are
reported beside requests/s: on a machine others share, they still show what a request costs. With
``--threads 2`` wrk's two threads interleave their timestamps and drift apart, so rows arrive late in
the card's series by more and more, as from clients of one card behind different connections. Figures
go to a rich table and ``reports/bench_burst.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.measure import core_or_none, describe_code, describe_machine, pin_to_core
from benchmarks.project import throwaway_folder
from benchmarks.serving import (
    PACKAGES,
    Config,
    Project,
    Server,
    Timeline,
    build_project,
    run_wrk,
    start_ours,
)

ROOT = Path(__file__).resolve().parents[1]
BURST_TERMINALS = 3  # terminals the tested card is used at
BURST_AMOUNTS = ("1.00", "1.50", "2.00", "2.99", "4.75")  # card-testing amounts: small, varied
GOAL_RATIO = 0.9  # burst requests/s against spread traffic's, and the burst's second half against its first

app = typer.Typer(add_completion=False)
console = Console()
if not console.is_terminal:  # logs and pipes: wide enough for the tables
    console.width = 150


def write_burst_pool(project: Project, path: Path) -> int:
    """A traffic pool of one card (the busiest of the spread pool) at a few of its terminals, with
    small amounts; returns the card's customer id."""
    lines = project.pool.read_text(encoding="utf-8").splitlines()
    card = Counter(line.split()[0] for line in lines).most_common(1)[0][0]
    terminals = list(dict.fromkeys(line.split()[1] for line in lines if line.split()[0] == card))
    terminals = terminals[:BURST_TERMINALS]
    path.write_text(
        "".join(
            f"{card} {terminals[k % len(terminals)]} {BURST_AMOUNTS[k % len(BURST_AMOUNTS)]}\n"
            for k in range(len(terminals) * len(BURST_AMOUNTS))
        ),
        encoding="utf-8",
    )
    return int(card)


def run_phase(
    cfg: Config,
    server: Server,
    timeline: Timeline,
    pool: Path,
    step_s: float,
    phase: str,
    slices: int,
    slice_s: float,
    logs: Path,
) -> list[dict[str, Any]]:
    """``slices`` consecutive wrk runs of one transaction a request from ``pool``, timestamps
    ``step_s`` apart and going on from one slice to the next; each slice's figures."""
    timeline.step = step_s
    results = []
    for k in range(slices):
        start_ts, max_ts = timeline.plan("single", slice_s)
        env = {
            "BENCH_MODE": "single",
            "BENCH_START_TS": str(start_ts),
            "BENCH_STEP_S": repr(step_s),
            "BENCH_MAX_TS": str(max_ts),
            "BENCH_RUN_TAG": f"{phase}{k}",
            "BENCH_POOL": str(pool),
        }
        result = run_wrk(cfg, server, "score.lua", env, slice_s, 1, logs, f"{phase}-{k}")
        timeline.advance("single", result)
        bad = result["non_2xx"] + result["socket_errors"]
        console.print(
            f"  {phase:<6} {k * slice_s:>4.0f}–{(k + 1) * slice_s:<4.0f} s {result['requests_per_s']:>8,.0f} "
            f"req/s  p99 {result['latency_ms']['p99']:>6.2f} ms  errors {bad}  "
            f"server CPU {result['server_cpu_pct']:.0f}%, others {result['other_cpu_pct']:.0f}%"
            + (f"  [red]{result['first_error'][:120]}[/]" if result["first_error"] else "")
            + (f"  [yellow]{result['clamped_rows']:,} clamped[/]" if result["clamped_rows"] else "")
        )
        results.append(result)
    return results


def summarise(spread: list[dict[str, Any]], burst: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean requests/s of each phase, their ratio, each phase's second half against its first (one
    10-s slice alone varies by 10-15 % on a quiet machine)."""

    def rate(runs: list[dict[str, Any]], per: str = "seconds") -> float:
        return sum(r["requests"] for r in runs) / sum(r[per] for r in runs)

    def halves(runs: list[dict[str, Any]]) -> float:
        return rate(runs[len(runs) // 2 :]) / rate(runs[: len(runs) // 2])

    burst_rps, spread_rps = rate(burst), rate(spread)
    ratio, flat = burst_rps / spread_rps, halves(burst)
    return {
        "spread_rps": spread_rps,
        "burst_rps": burst_rps,
        "burst_over_spread": ratio,
        "spread_per_cpu_s": rate(spread, "server_cpu_s"),
        "burst_per_cpu_s": rate(burst, "server_cpu_s"),
        "burst_over_spread_per_cpu_s": rate(burst, "server_cpu_s") / rate(spread, "server_cpu_s"),
        "burst_second_half_over_first": flat,
        "spread_second_half_over_first": halves(spread),
        "errors": sum(r["non_2xx"] + r["socket_errors"] for r in spread + burst),
        "clamped_rows": sum(r["clamped_rows"] for r in spread + burst),
        "other_cpu_pct_max": max(r["other_cpu_pct"] for r in spread + burst),
        "goals_met": ratio >= GOAL_RATIO and flat >= GOAL_RATIO,
    }


def print_report(report: dict[str, Any]) -> None:
    cfg, s = report["config"], report["summary"]
    table = Table(
        title=f"Card-testing burst — {report['date']} — {report['machine']['cpu']}, "
        f"{report['machine']['cores']} cores — POST /v1/score, wrk {cfg['connections']} connections"
    )
    columns = ("slice", "spread req/s", "burst req/s", "burst / spread", "spread p99 ms", "burst p99 ms")
    for col in (*columns, "spread req/CPU-s", "burst req/CPU-s", "server CPU"):
        table.add_column(col, justify="right")
    for k, (a, b) in enumerate(zip(report["spread"], report["burst"], strict=True)):
        table.add_row(
            f"{k * cfg['seconds'] / len(report['spread']):.0f}–"
            f"{(k + 1) * cfg['seconds'] / len(report['spread']):.0f} s",
            f"{a['requests_per_s']:,.0f}",
            f"{b['requests_per_s']:,.0f}",
            f"{b['requests_per_s'] / a['requests_per_s']:.2f}",
            f"{a['latency_ms']['p99']:.2f}",
            f"{b['latency_ms']['p99']:.2f}",
            f"{a['requests'] / a['server_cpu_s']:,.0f}",
            f"{b['requests'] / b['server_cpu_s']:,.0f}",
            f"{a['server_cpu_pct']:.0f}%, {b['server_cpu_pct']:.0f}%",
        )
    table.add_row(
        "whole phase",
        f"{s['spread_rps']:,.0f}",
        f"{s['burst_rps']:,.0f}",
        f"{s['burst_over_spread']:.2f}",
        "",
        "",
        f"{s['spread_per_cpu_s']:,.0f}",
        f"{s['burst_per_cpu_s']:,.0f}",
        f"burst / spread {s['burst_over_spread_per_cpu_s']:.2f}",
    )
    console.print(table)
    met = "[green]met[/]" if s["goals_met"] else "[red]not met[/]"
    console.print(
        f"burst / spread {s['burst_over_spread']:.2f}, burst second half / first "
        f"{s['burst_second_half_over_first']:.2f} (goals ≥ {GOAL_RATIO}: {met}); spread second half / first "
        f"{s['spread_second_half_over_first']:.2f}; "
        f"card {report['card']} held {report['burst_rows']:,} rows by the end; errors {s['errors']}, "
        f"clamped timestamps {s['clamped_rows']}; others' CPU up to {s['other_cpu_pct_max']:.0f}%; "
        f"report: {report['out']}"
    )


def run(cfg: Config, slices: int, burst_step_s: float, out: Path, keep: bool) -> dict[str, Any]:
    slice_s = cfg.seconds / slices
    with throwaway_folder("fraudops-bench-burst-", keep) as root:
        logs = root / "logs"
        logs.mkdir()
        project = build_project(cfg, root)
        burst_pool = root / "burst_pool.txt"
        card = write_burst_pool(project, burst_pool)
        pin_to_core(core_or_none(cfg.load_cpu))  # this process (idle during runs) off the server's core
        code = describe_code()  # what the server imports: the working tree as it is now
        server = start_ours(project, cfg, logs)
        try:
            timeline = Timeline(project)
            console.print(f"[bold]warm-up[/] ({cfg.warmup_seconds:g} s of spread traffic)")
            run_phase(
                cfg, server, timeline, project.pool, project.step_s, "warmup", 1, cfg.warmup_seconds, logs
            )
            console.print(f"[bold]spread traffic[/] ({cfg.seconds:g} s, the simulated traffic pool)")
            spread = run_phase(
                cfg, server, timeline, project.pool, project.step_s, "spread", slices, slice_s, logs
            )
            console.print(f"[bold]burst[/] ({cfg.seconds:g} s, card {card}, {burst_step_s:g} s apart)")
            burst = run_phase(cfg, server, timeline, burst_pool, burst_step_s, "burst", slices, slice_s, logs)
        finally:
            server.stop()
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.burst " + " ".join(sys.argv[1:]),
        "machine": describe_machine(PACKAGES),
        "code": code,
        "config": cfg.__dict__ | {"slices": slices, "burst_step_s": burst_step_s},
        "card": card,
        "burst_rows": sum(r["ok_requests"] for r in burst),
        "summary": summarise(spread, burst),
        "spread": spread,
        "burst": burst,
        "server": {"exit_code": server.exit_code, "peak_rss_mb": round(server.peak_rss_mb, 1)},
        "out": str(out),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print_report(report)
    return report


@app.command()
def main(
    seconds: Annotated[float, typer.Option(min=2, help="Seconds of each phase (spread, then burst).")] = 60.0,
    slices: Annotated[int, typer.Option(min=2, help="Slices each phase is measured in.")] = 6,
    warmup: Annotated[float, typer.Option(min=1, help="Seconds of spread traffic before measuring.")] = 5.0,
    burst_step: Annotated[
        float, typer.Option(min=0.01, help="Simulated seconds between two of the burst's transactions.")
    ] = 0.25,
    connections: Annotated[int, typer.Option(min=1, help="wrk connections.")] = 8,
    threads: Annotated[int, typer.Option(min=1, max=2, help="wrk threads (2: their rows interleave).")] = 1,
    customers: Annotated[int, typer.Option(min=50, help="Customers in the simulated world.")] = 2000,
    terminals: Annotated[int, typer.Option(min=100, help="Terminals in the simulated world.")] = 4000,
    history_days: Annotated[int, typer.Option(min=60, help="Days of history to train on.")] = 84,
    seed: Annotated[int, typer.Option(help="Seed of the simulated world.")] = 7,
    server_cpu: Annotated[int, typer.Option(help="Core the server is pinned to (-1: no pinning).")] = 0,
    load_cpu: Annotated[int, typer.Option(help="Core wrk is pinned to (-1: no pinning).")] = 1,
    out: Annotated[Path, typer.Option(help="JSON report.")] = ROOT / "reports" / "bench_burst.json",
    keep: Annotated[bool, typer.Option(help="Keep the temporary project and the logs.")] = False,
) -> None:
    """One card's burst against spread traffic on POST /v1/score: requests/s per slice and their ratio."""
    cfg = replace(
        Config(),
        seconds=seconds,
        warmup_seconds=warmup,
        connections=connections,
        threads=threads,
        customers=customers,
        terminals=terminals,
        history_days=history_days,
        seed=seed,
        server_cpu=server_cpu,
        load_cpu=load_cpu,
    )
    run(cfg, slices, burst_step, out, keep)


if __name__ == "__main__":
    app()
