"""Where a single request's slow tail comes from: one connection, every request's latency and its time.

``python -m benchmarks.latency_tail`` (``--help`` for the options; about 3 minutes).

wrk gives percentiles; this gives each request's latency with the moment it was sent, so the slow
ones can be lined up with what the server does on a timer. It builds the serving benchmark's
throwaway project (:func:`benchmarks.serving.build_project`), then for each prediction-log flush
interval asked for (``FRAUDOPS_LOG_FLUSH_INTERVAL_S``) starts ``fraudops serve`` pinned to one core
and sends one transaction at a time from this process, pinned to the other (plain ``http.client``:
it adds about 0.15 ms a request of its own against wrk's figures). For each interval it prints the
percentiles and the median gap between two requests slower than ``--slow-ms``: a tail the flushes
cause repeats at their interval.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from benchmarks.measure import core_or_none, describe_code, describe_machine, pin_to_core
from benchmarks.project import throwaway_folder
from benchmarks.serving import (
    PACKAGES,
    Config,
    Project,
    Timeline,
    build_project,
    console,
    start_ours,
)

app = typer.Typer(add_completion=False)


def one_connection(
    url: str, project: Project, timeline: Timeline, seconds: float
) -> list[tuple[float, float]]:
    """(seconds since the start, latency in ms) of each request, one at a time over one connection."""
    pool = [line.split() for line in project.pool.read_text(encoding="utf-8").splitlines()]
    first, limit = timeline.plan("single", seconds)
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    tag = f"tail-{time.time_ns()}"
    out: list[tuple[float, float]] = []
    start = time.perf_counter()
    i = 0
    while (sent := time.perf_counter()) - start < seconds:
        customer, terminal, amount = pool[i % len(pool)]
        when = min(first + int(i * project.step_s), limit)
        body = json.dumps(
            {
                "transaction_id": f"{tag}-{i}",
                "tx_datetime": dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "customer_id": int(customer),
                "terminal_id": int(terminal),
                "tx_amount": float(amount),
            }
        )
        conn.request("POST", "/v1/score", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"request {i} answered {response.status}")
        out.append((sent - start, (time.perf_counter() - sent) * 1000))
        i += 1
    conn.close()
    timeline.advance(
        "single", {"threads": [{"last_ts": first + int(i * project.step_s)}], "rows_per_s": i / seconds}
    )
    return out


def summary(latencies: list[tuple[float, float]], slow_ms: float) -> dict[str, Any]:
    ms = np.array([lat for _, lat in latencies])
    slow = [at for at, lat in latencies if lat > slow_ms]
    gaps = np.diff(slow)
    return {
        "requests": len(ms),
        **{f"p{q:g}_ms": float(np.percentile(ms, q)) for q in (50, 90, 99, 99.9)},
        "max_ms": float(ms.max()),
        "slow": len(slow),
        "slow_share": len(slow) / len(ms),
        "slow_gap_median_s": float(statistics.median(gaps)) if len(gaps) else None,
    }


@app.command()
def main(
    intervals: Annotated[
        str, typer.Option(help="Flush intervals to compare, seconds, comma-separated.")
    ] = "0.05,0.099",
    seconds: Annotated[float, typer.Option(min=1, help="Seconds of each measured run.")] = 15.0,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds of warm-up per server.")] = 3.0,
    slow_ms: Annotated[float, typer.Option(min=0, help="A request slower than this counts as slow.")] = 1.5,
    out: Annotated[Path, typer.Option(help="JSON report.")] = Path("reports/latency_tail.json"),
) -> None:
    """One connection against our API: percentiles, and how often the slow requests come."""
    cfg = replace(Config(), connections=1)
    results: dict[str, Any] = {}
    with throwaway_folder("fraudops-latency-tail-") as root:
        logs = root / "logs"
        logs.mkdir()
        project = build_project(cfg, root)
        timeline = Timeline(project)
        pin_to_core(core_or_none(cfg.load_cpu))
        for interval in intervals.split(","):
            env = {"FRAUDOPS_LOG_FLUSH_INTERVAL_S": interval.strip()}
            server = start_ours(project, cfg, logs, name=f"ours-flush-{interval.strip()}", env=env)
            try:
                if warmup:
                    one_connection(server.url, project, timeline, warmup)
                results[interval.strip()] = summary(
                    one_connection(server.url, project, timeline, seconds), slow_ms
                )
            finally:
                server.stop()
    table = Table(
        title=f"One connection, {seconds:g} s a run: requests slower than {slow_ms:g} ms and their spacing"
    )
    for col in (
        "flush interval",
        "requests",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "slow",
        "median gap",
    ):
        table.add_column(col, justify="right")
    for interval, r in results.items():
        gap = r["slow_gap_median_s"]
        table.add_row(
            f"{interval} s",
            f"{r['requests']:,}",
            *(f"{r[k]:.3f}" for k in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms")),
            f"{r['max_ms']:.1f}",
            f"{r['slow']} ({100 * r['slow_share']:.1f} %)",
            "–" if gap is None else f"{gap * 1000:.1f} ms",
        )
    console.print(table)
    report = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": describe_machine(PACKAGES),
        "code": describe_code(),
        "seconds": seconds,
        "slow_ms": slow_ms,
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(f"report: {out}")


if __name__ == "__main__":
    app()
