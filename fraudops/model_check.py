"""``make model-check``: CI for the model — the DVC pipeline on a small world, its metrics against a baseline.

Code CI asks "do the tests pass?"; this asks "does the committed pipeline still train as good a model?":

1. clone the repository's committed tree into a temporary folder (this folder's data/, stores/ and
   metrics/ are never touched) and commit the baseline's metrics there as ``metrics/metrics.json``;
2. simulate a small world (:data:`WORLD`), set the clock past it and ``fraudops ingest`` it;
3. ``dvc repro``: validate, features and train, with the clone's own ``params.yaml``;
4. ``dvc metrics diff HEAD``: the baseline (the clone's HEAD) against what the pipeline just measured;
5. each metric of :data:`TOLERANCE` may be at most its tolerance below the baseline, and the model must
   pass the promotion gate as a first model (:func:`pipelines.gate.judge`); the gate's verdict with the
   baseline's model as champion is reported beside it.

Exit 1 when a gated metric dropped beyond its tolerance, the model fails the first-model rule, or a step
fails. The table goes to the terminal and, as markdown, to ``$GITHUB_STEP_SUMMARY`` when it is set.
``--update`` (``make model-check UPDATE=1``) records the metrics measured as the new baseline.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from core.params import GateParams, load_params
from fraudops.errors import UserError
from fraudops.screenshots import clone_env, clone_repository
from pipelines.gate import GateDecision, judge

ROOT = Path(__file__).resolve().parents[1]
BASELINE = Path(__file__).with_name("model_check_baseline.json")
UPDATE_COMMAND = "make model-check UPDATE=1"
METRICS_FILE = "metrics/metrics.json"  # dvc.yaml's metrics output of the train stage
# the small world: a 1,000-card version of the demo's, 84 days (a 37-day feature warm-up, the 35 days of
# train + gap + test, the prequential folds' earlier weeks, 6 days whose labels the clock has not released)
WORLD: dict[str, Any] = {
    "customers": 1000,
    "terminals": 2000,
    "days": 84,
    "seed": 7,
    "start_date": "2026-01-05",
}
# how far below the baseline a metric may fall and still pass (absolute). The run is deterministic, so
# any move comes from a change of code, params or library; one test week of this world holds about 100
# frauds and 140 card slots (k = 20 a day), where 0.02 is a few frauds ranked lower or 3 cards missed
TOLERANCE: dict[str, float] = {
    "average_precision": 0.02,
    "roc_auc": 0.02,
    "card_precision_at_k": 0.02,
    "prequential_average_precision_mean": 0.02,
}

console = Console()


def say(text: str) -> None:
    """One progress line (the whole check takes a minute or two)."""
    console.print(f"[dim]\\[model-check][/] {text}", highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class MetricChange:
    """One row of ``dvc metrics diff``: the baseline's value, the new one and the tolerance (None: not gated)."""

    name: str
    old: float | None
    new: float | None
    tolerance: float | None

    @property
    def change(self) -> float | None:
        """New minus baseline (None when either is missing)."""
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def worse(self) -> bool:
        """A gated metric that fell more than its tolerance below the baseline, or went missing."""
        if self.tolerance is None:
            return False
        if self.new is None:
            return True
        return self.old is not None and self.new < self.old - self.tolerance - 1e-12


def parse_metrics_diff(diff: dict[str, Any], tolerance: dict[str, float]) -> list[MetricChange]:
    """``dvc metrics diff --all --json`` -> one change per metric of the metrics file, gated ones first."""
    rows = diff.get(METRICS_FILE, {})
    changes = [
        MetricChange(name, _number(row.get("old")), _number(row.get("new")), tolerance.get(name))
        for name, row in rows.items()
    ]
    changes += [MetricChange(name, None, None, tol) for name, tol in tolerance.items() if name not in rows]
    order = {name: i for i, name in enumerate(tolerance)}
    return sorted(changes, key=lambda c: (order.get(c.name, len(order)), c.name))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Verdict:
    """What the check concluded: the metric rows, the gate's two verdicts, and whether it passed."""

    changes: list[MetricChange]
    as_first_model: GateDecision
    against_baseline: GateDecision

    @property
    def worse(self) -> list[MetricChange]:
        """The gated metrics that dropped beyond their tolerance."""
        return [c for c in self.changes if c.worse]

    @property
    def passed(self) -> bool:
        """No gated metric dropped beyond tolerance, and the model passes the gate as a first model."""
        return not self.worse and self.as_first_model.promote


def judge_run(
    diff: dict[str, Any], new: dict[str, float], old: dict[str, float], gate: GateParams
) -> Verdict:
    """The tolerance rule on the diff; the gate (``pipelines.gate.judge``) as a first model and vs the baseline."""
    return Verdict(parse_metrics_diff(diff, TOLERANCE), judge(new, None, gate), judge(new, old, gate))


# --- the run in the clone ---------------------------------------------------------------------------


def run_step(args: list[str], clone: Path, log: Path) -> str:
    """Run ``args`` in the clone with its environment; its output is appended to ``log`` and returned."""
    with log.open("a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(args)}\n")
    proc = subprocess.run(args, cwd=clone, env=clone_env(clone), capture_output=True, text=True, check=False)
    with log.open("a", encoding="utf-8") as out:
        out.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise UserError(f"`{' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def commit_baseline(clone: Path, metrics: dict[str, float]) -> None:
    """The baseline's metrics as the clone's HEAD ``metrics/metrics.json``: what ``dvc metrics diff`` compares with."""
    path = clone / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    identity = ["-c", "user.name=model-check", "-c", "user.email=model-check@localhost"]
    subprocess.run(["git", "add", "--force", METRICS_FILE], cwd=clone, check=True)
    subprocess.run(
        ["git", *identity, "commit", "--quiet", "-m", "model-check baseline", "--", METRICS_FILE],
        cwd=clone,
        check=True,
    )


def build_world(clone: Path, world: Path, log: Path) -> None:
    """Simulate :data:`WORLD`, move the clock to the day after it and ingest it (DVC tracks it in the clone)."""
    python = [sys.executable, "-m", "fraudops"]
    options = [f"--{key.replace('_', '-')}={value}" for key, value in WORLD.items()]
    run_step([*python, "simulate", *options, f"--out={world}"], clone, log)
    today = dt.date.fromisoformat(WORLD["start_date"]) + dt.timedelta(days=WORLD["days"])
    run_step([*python, "clock", "set", today.isoformat()], clone, log)
    run_step([*python, "ingest", str(world)], clone, log)


def dvc(*args: str) -> list[str]:
    """The DVC of this interpreter's environment."""
    return [str(Path(sys.executable).parent / "dvc"), *args]


def measure(clone: Path, world: Path, log: Path) -> dict[str, Any]:
    """Build the world, ``dvc repro``, and return ``dvc metrics diff HEAD --all --json``."""
    say(f"simulating {WORLD['customers']:,} customers over {WORLD['days']} days and ingesting them")
    build_world(clone, world, log)
    say("dvc repro (validate, features, train)")
    run_step(dvc("repro"), clone, log)
    say("dvc metrics diff HEAD --all --json (HEAD holds the baseline)")
    diff: dict[str, Any] = json.loads(run_step(dvc("metrics", "diff", "HEAD", "--all", "--json"), clone, log))
    return diff


# --- the baseline -----------------------------------------------------------------------------------


def load_baseline(path: Path) -> dict[str, Any]:
    """The recorded baseline: its metrics, the world they were measured on, and the command, date, commit."""
    if not path.exists():
        raise UserError(f"{path} is missing: record it with `{UPDATE_COMMAND}`")
    baseline: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    missing = {"command", "date", "commit", "world", "metrics"} - baseline.keys()
    if missing:
        raise UserError(f"{path}: missing {sorted(missing)}; record it again with `{UPDATE_COMMAND}`")
    if baseline["world"] != WORLD:
        raise UserError(
            f"{path} was measured on {baseline['world']}, not this check's world {WORLD}: `{UPDATE_COMMAND}`"
        )
    return baseline


def git_commit(root: Path) -> str:
    """HEAD's commit of ``root`` ("unknown" outside git)."""
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "unknown"


def uncommitted(root: Path) -> int:
    """How many tracked files differ from HEAD: edits the check does not see (it runs the committed tree)."""
    proc = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return len(proc.stdout.splitlines())


def write_baseline(path: Path, metrics: dict[str, float], commit: str, seconds: float) -> None:
    """Record ``metrics`` as the baseline, with the command, date, commit and duration that made it."""
    baseline = {
        "command": UPDATE_COMMAND,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "seconds": round(seconds, 1),
        "world": WORLD,
        "metrics": metrics,
    }
    path.write_text(json.dumps(baseline, indent=2) + "\n", encoding="utf-8")


# --- the report -------------------------------------------------------------------------------------


def fmt(value: float | None, signed: bool = False) -> str:
    """A metric for the table: 4 decimals, "—" when missing."""
    if value is None:
        return "—"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def row_verdict(change: MetricChange) -> str:
    """ "worse" / "ok" for a gated metric, "" for one only shown."""
    if change.tolerance is None:
        return ""
    return "WORSE" if change.worse else "ok"


def verdict_lines(verdict: Verdict) -> list[str]:
    """The check's outcome and the gate's two verdicts, one sentence each."""
    first = verdict.as_first_model
    versus = verdict.against_baseline
    worse = ", ".join(c.name for c in verdict.worse)
    return [
        f"model check: {'PASS' if verdict.passed else 'FAIL'}"
        + (
            f" — dropped beyond tolerance: {worse}"
            if worse
            else " — no gated metric dropped beyond its tolerance"
        ),
        f"gate as a first model: {'promote' if first.promote else 'refuse'} ({'; '.join(first.reasons)})",
        f"gate against the baseline's model as champion (shown, not gated): "
        f"{'promote' if versus.promote else 'keep the champion'} ({'; '.join(versus.reasons)})",
    ]


def print_report(verdict: Verdict, baseline: dict[str, Any]) -> None:
    """The diff as a table (the gated metrics, then any other that moved), then the verdicts."""
    table = Table(
        title=f"dvc metrics diff: baseline ({baseline['date']}, {baseline['commit'][:7]}) → this run"
    )
    for column in ("metric", "baseline", "now", "change", "tolerance", "verdict"):
        table.add_column(column, overflow="fold", justify="left" if column == "metric" else "right")
    shown = [c for c in verdict.changes if c.tolerance is not None or c.change != 0]
    for c in shown:
        style = "red" if c.worse else ("bold" if c.tolerance is not None else "")
        tolerance = "" if c.tolerance is None else f"-{c.tolerance}"
        table.add_row(
            c.name, fmt(c.old), fmt(c.new), fmt(c.change, True), tolerance, row_verdict(c), style=style
        )
    table.caption = f"{len(verdict.changes) - len(shown)} other metrics of {METRICS_FILE} unchanged"
    console.print(table)
    for line in verdict_lines(verdict):
        console.print(line, highlight=False, soft_wrap=True)


def summary_markdown(verdict: Verdict, baseline: dict[str, Any], seconds: float) -> str:
    """The job summary: the verdicts, the gated metrics as a table, every other metric folded away."""

    def rows(changes: list[MetricChange]) -> list[str]:
        return [
            f"| {c.name} | {fmt(c.old)} | {fmt(c.new)} | {fmt(c.change, signed=True)} | "
            f"{'' if c.tolerance is None else f'-{c.tolerance}'} | {row_verdict(c)} |"
            for c in changes
        ]

    head = ["| metric | baseline | now | change | tolerance | verdict |", "|---|---:|---:|---:|---:|---|"]
    gated = [c for c in verdict.changes if c.tolerance is not None]
    shown = [c for c in verdict.changes if c.tolerance is None]
    lines = [
        f"## Model check: {'✅ pass' if verdict.passed else '❌ fail'}",
        "",
        f"`dvc repro` on a small simulated world ({WORLD['customers']:,} customers, {WORLD['days']} days, "
        f"seed {WORLD['seed']}) in {seconds:.0f} s; `dvc metrics diff` against the baseline of "
        f"{baseline['date']} (commit {baseline['commit'][:7]}).",
        "",
        *[f"- {line}" for line in verdict_lines(verdict)],
        "",
        *head,
        *rows(gated),
        "",
        "<details><summary>every other metric (shown, not gated)</summary>",
        "",
        *head,
        *rows(shown),
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def write_step_summary(text: str) -> None:
    """Append to the GitHub Actions job summary when the job has one."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with Path(path).open("a", encoding="utf-8") as out:
            out.write(text)


# --- the command ------------------------------------------------------------------------------------


def check(workdir: Path, baseline_path: Path, update: bool) -> int:
    """Run the check in a clone under ``workdir``; 0 when it passed (or, with ``update``, was recorded)."""
    started = time.monotonic()
    baseline = previous_baseline(baseline_path) if update else load_baseline(baseline_path)
    clone = clone_repository(workdir / "fraudops")
    commit = git_commit(clone)
    say(f"cloned commit {commit[:7]} into {clone}")
    changed = uncommitted(ROOT)
    if changed:
        say(f"[yellow]{changed} tracked files have uncommitted changes: the check runs the committed tree[/]")
    commit_baseline(clone, baseline["metrics"] if baseline else {})
    diff = measure(clone, workdir / "world", workdir / "model-check.log")
    seconds = time.monotonic() - started
    new = json.loads((clone / METRICS_FILE).read_text(encoding="utf-8"))
    if update:
        write_baseline(baseline_path, new, commit, seconds)
        say(f"recorded {baseline_path} ({seconds:.0f} s): commit it with the change that moved the metrics")
    if baseline is None:
        return 0
    verdict = judge_run(diff, new, baseline["metrics"], load_params(clone / "params.yaml").gate)
    print_report(verdict, baseline)
    write_step_summary(summary_markdown(verdict, baseline, seconds))
    tolerances = ", ".join(f"{name} -{tol}" for name, tol in TOLERANCE.items())
    say(f"done in {seconds:.0f} s (tolerances, absolute: {tolerances})")
    return 0 if verdict.passed or update else 1


def previous_baseline(path: Path) -> dict[str, Any] | None:
    """The baseline an update replaces, to show what moved (None when absent or of another world)."""
    try:
        return load_baseline(path)
    except UserError:
        return None


app = typer.Typer(add_completion=False)


@app.command()
def main(
    update: Annotated[
        bool, typer.Option("--update", help="Record the metrics measured as the new baseline.")
    ] = False,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temporary clone (its path is printed).")
    ] = False,
    baseline: Annotated[Path, typer.Option(help="The baseline file.")] = BASELINE,
) -> None:
    """Run the DVC pipeline on a small world in a clone; fail when a metric fell beyond its tolerance."""
    workdir = Path(tempfile.mkdtemp(prefix="fraudops-model-check-"))
    try:
        code = check(workdir, baseline, update)
    except UserError as exc:
        say(f"[red]failed[/]: {exc}")
        write_step_summary(f"## Model check: ❌ could not run\n\n```text\n{exc}\n```\n")
        code = 1
    finally:
        if keep:
            say(f"kept {workdir} (the clone, the world and model-check.log)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
