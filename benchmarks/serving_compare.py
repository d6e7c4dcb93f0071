"""Serving figures of two commits in one run: ``python -m benchmarks.serving_compare [BASE]``.

Runs the serving benchmark (``python -m benchmarks.serving``, its defaults) on a git worktree of
``BASE`` (default: the commit before the structure work, 263e51c), then on this working tree, one
after the other on the same machine, and prints their figures side by side. Each side's benchmark,
servers included, runs on its own tree's code; the virtual environment is the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.measure import describe_code, describe_machine
from benchmarks.project import ROOT, side_env, worktree

BASE = "263e51c"
ROWS = [  # (group, server, figure, label, format)
    ("single", "ours", "requests_per_s", "one transaction, ours: requests/s", "{:,.0f}"),
    ("single", "ours", "p99_ms", "one transaction, ours: p99 (ms)", "{:.1f}"),
    ("single", "mlflow", "requests_per_s", "one transaction, mlflow: requests/s", "{:,.0f}"),
    ("columns", "ours", "rows_per_s", "1,000-row batches as columns, ours: rows/s", "{:,.0f}"),
    ("batch", "ours", "rows_per_s", "1,000-row batches as rows, ours: rows/s", "{:,.0f}"),
    ("batch", "mlflow", "rows_per_s", "1,000-row batches, mlflow: rows/s", "{:,.0f}"),
]


def run_side(tree: Path, out: Path, args: list[str]) -> dict[str, Any]:
    """The serving benchmark on ``tree``'s code; its JSON report."""
    command = [sys.executable, "-m", "benchmarks.serving", "--out", str(out), *args]
    subprocess.run(command, cwd=tree, env=side_env(tree), check=True)
    return dict(json.loads(out.read_text(encoding="utf-8")))


def figure(report: dict[str, Any], group: str, server: str, name: str) -> float:
    return float(report["summary"][group][server][name])


def ratios(report: dict[str, Any]) -> dict[str, float]:
    """The goals' ratios: single requests/s and p99 against mlflow's, batch rows/s against mlflow's."""
    single = report["summary"]["single"]
    mlflow_rows = figure(report, "batch", "mlflow", "rows_per_s")
    return {
        "one transaction: requests/s, ours / mlflow": single["ours"]["requests_per_s"]
        / single["mlflow"]["requests_per_s"],
        "one transaction: p99, ours / mlflow": single["ours"]["p99_ms"] / single["mlflow"]["p99_ms"],
        "batches as columns: rows/s, ours / mlflow": figure(report, "columns", "ours", "rows_per_s")
        / mlflow_rows,
        "batches as rows: rows/s, ours / mlflow": figure(report, "batch", "ours", "rows_per_s") / mlflow_rows,
    }


def main(base: str = BASE, *args: str) -> None:
    """Both sides, then a markdown table."""
    reports = ROOT / "reports"
    reports.mkdir(exist_ok=True)
    before = run_side(worktree(base), reports / f"bench_serving_{base}.json", list(args))
    after = run_side(ROOT, reports / "bench_serving.json", list(args))
    box, code = describe_machine(), describe_code()
    print(f"# serving before ({base}) and after ({code['commit'][:7]}), one run")
    print(f"# {box['cpu']}, {box['cores']} cores, {box['memory_gb']} GB, Python {box['python']}")
    print("| | before | after | after / before |\n|---|---:|---:|---:|")
    for group, server, name, label, form in ROWS:
        old, new = figure(before, group, server, name), figure(after, group, server, name)
        print(f"| {label} | {form.format(old)} | {form.format(new)} | {new / old:.2f} |")
    for label, old in ratios(before).items():
        print(f"| {label} | {old:.3f} | {ratios(after)[label]:.3f} | |")
    for name, report in (("before", before), ("after", after)):
        swap = report.get("swap") or {}
        print(
            f"# swap under load, {name}: {swap.get('requests')} requests, {swap.get('failed_requests')} failed"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
