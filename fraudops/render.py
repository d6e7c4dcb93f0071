"""What the command line and the demo show people: one renderer per result, shared by both.

Ingest reports, training outcomes and monitoring decisions are printed here and only here, so
``fraudops ingest`` and the demo's ingest step (or ``fraudops monitor history`` and the demo's
summary) show the same table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from core.registry import CHAMPION

if TYPE_CHECKING:  # the pipelines import MLflow and Prefect: only commands that run them pay for it
    from monitoring.summary import MonitoringSummary, ReportPaths, RetrainOutcome
    from pipelines.ingest import IngestReport
    from pipelines.training import TrainingOutcome


def print_ingest_report(console: Console, report: IngestReport) -> None:
    """Outcome counts per kind and status, each rejected batch with its reason, then files left alone."""
    from pipelines.ingest import EXPECTED_NAMES

    counts: dict[tuple[str, str], list[int]] = {}
    for o in report.outcomes:
        row = counts.setdefault((o.kind, o.status), [0, 0, 0, 0, 0])
        for i, value in enumerate((o.rows, o.accepted, o.duplicates, o.quarantined, 1)):
            row[i] += value
    table = Table(title=f"Ingest — data version {report.data_version}")
    for col in ("kind", "status", "files", "rows", "accepted", "duplicates", "quarantined"):
        table.add_column(col)
    for (kind, status), (rows, acc, dup, bad, files) in sorted(counts.items()):
        table.add_row(kind, status, str(files), f"{rows:,}", f"{acc:,}", f"{dup:,}", f"{bad:,}")
    console.print(table)
    for o in report.rejected:
        console.print(f"[red]rejected[/] {o.path}: {o.reason}")
    if report.ignored:
        console.print(f"[yellow]warning[/]: not day files, left alone (expected {EXPECTED_NAMES}):")
    for path in report.ignored:
        console.print(f"  [yellow]ignored[/] {path}", soft_wrap=True)


METRICS = (
    ("average_precision", "average precision"),
    ("roc_auc", "ROC AUC"),
    ("card_precision_at_k", "card precision@k"),
)


def print_training(console: Console, outcome: TrainingOutcome) -> None:
    """Metrics of the new version beside the champion's and the random baseline, then the gate's verdict."""
    test_window = outcome.windows.as_tags()["test_window"]
    table = Table(title=f"Model version {outcome.version} → @{outcome.alias} (test {test_window})")
    for col in ("metric", "new version", "champion", "random"):
        table.add_column(col)
    champ = outcome.champion_metrics
    for key, label in METRICS:
        table.add_row(
            label,
            f"{outcome.metrics[key]:.3f}",
            f"{champ[key]:.3f}" if champ else "—",
            f"{outcome.metrics[f'{key}_random']:.3f}",
        )
    console.print(table)
    verdict = "[green]promoted[/]" if outcome.decision.promote else "[yellow]not promoted[/]"
    console.print(f"gate: {verdict} — " + "; ".join(outcome.decision.reasons))


def print_models(console: Console, trainings: list[TrainingOutcome], champion: str | None) -> None:
    """Each trained version with its test metrics (random baseline in brackets) and the gate's verdict."""
    models = Table(
        title="Model versions (metrics on each one's held-out test window; random baseline in brackets)"
    )
    columns = ("version", "now", "trained because", "test window", "AP", "ROC AUC", "CP@k")
    for col in (*columns, "alerts: precision / recall", "gate"):
        models.add_column(col)
    for t in trainings:
        m = t.metrics
        now = "champion" if t.version == champion else "retired" if t.alias == CHAMPION else t.alias
        models.add_row(
            t.version,
            now,
            t.reason[:40],
            t.windows.as_tags()["test_window"],
            f"{m['average_precision']:.3f} ({m['average_precision_random']:.3f})",
            f"{m['roc_auc']:.3f}",
            f"{m['card_precision_at_k']:.3f} ({m['card_precision_at_k_random']:.3f})",
            f"{m['precision_at_threshold']:.2f} / {m['recall_at_threshold']:.2f}",
            "promoted" if t.decision.promote else "kept champion",
        )
    console.print(models)
    for t in trainings:
        console.print(f"  v{t.version} gate: " + "; ".join(t.decision.reasons))


def print_monitoring(console: Console, summary: MonitoringSummary) -> None:
    """The decision, its reasons, the retraining it started and where its reports are."""
    console.print(f"monitoring {summary.today}: [bold]{summary.decision.action}[/]")
    for reason in summary.decision.reasons:
        console.print(f"  • {reason}")
    if summary.retrain is not None and summary.retrain.started:
        console.print(f"  retraining: {retrain_outcome(summary.retrain)}")
    if summary.retrain_failures:
        console.print(f"  [red]retraining failures in a row: {summary.retrain_failures}[/]")
    for name, path in report_paths(summary.reports):
        console.print(f"  {name}: {path}", soft_wrap=True)
    if summary.mlflow_run_id:
        console.print(f"  MLflow run: {summary.mlflow_run_id} (experiment fraudops-monitoring)")


def report_paths(reports: ReportPaths) -> list[tuple[str, Path]]:
    """Each report written, with a readable name ("drift html")."""
    return [(name.replace("_", " "), path) for name, path in reports if path is not None]


def retrain_outcome(retrain: RetrainOutcome | None) -> str:
    """What a retraining the monitor started came to, in a few words."""
    if retrain is None or not retrain.started:
        return "—"
    if not retrain.finished:
        return "crashed: started, never recorded"
    if not retrain.completed:
        return f"failed: {retrain.error}"
    verdict = "promoted" if retrain.promoted else "kept the champion"
    return f"version {retrain.version}, gate {verdict}"


def live_ap(summary: MonitoringSummary) -> str:
    """Live AP, with the expected AP and the alarm floor in brackets when known."""
    perf = summary.performance
    live, floor = perf.average_precision, perf.floor
    expected = perf.expected.average_precision if perf.expected else None
    if live is None:
        return "—"
    if expected is None and floor is None:
        return f"{live:.3f}"
    shown = "—" if expected is None else f"{expected:.3f}"
    return f"{live:.3f} ({shown}" + (")" if floor is None else f"; {floor:.3f})")


def decisions_table(runs: list[MonitoringSummary], title: str = "Monitoring decisions") -> Table:
    """One row per monitoring run: the evidence, the action and what the retraining came to."""
    table = Table(title=title)
    columns = ("today", "model", "scored rows", "drifted columns", "prediction drift")
    for col in (*columns, "live AP (expected; alarm below)", "action", "retraining"):
        table.add_column(col)
    for s in runs:
        drift = s.drift
        prediction = drift.prediction if drift else None
        score = "—"
        if prediction is not None:
            score = f"{prediction.score:.3f}" + (" (drift)" if prediction.drifted else "")
        table.add_row(
            s.today.isoformat(),
            s.model.version,
            f"{s.rows:,}",
            f"{len(drift.drifted_columns)}/{drift.n_columns}" if drift else "—",
            score,
            live_ap(s),
            s.decision.action,
            retrain_outcome(s.retrain),
        )
    return table


def print_decisions(console: Console, runs: list[MonitoringSummary], reports: bool = True) -> None:
    """Each monitoring run: its evidence in a table, then its reasons (and the paths of its reports)."""
    console.print(decisions_table(runs))
    for s in runs:
        reasons = "; ".join(s.decision.reasons)
        console.print(f"  {s.today} — {s.decision.action}: {reasons}", soft_wrap=True)
        if not reports:
            continue
        for name, path in report_paths(s.reports):
            console.print(f"    {name}: {path}", soft_wrap=True)  # copyable, unbroken


OUTCOME_ROWS = (
    ("run", "run"),
    ("drift_seen", "drift seen on the drifted weeks"),
    ("live_ap_drifted", "live AP, drifted weeks"),
    ("expected_ap", "AP the served model promised"),
    ("alerts_raised", "alerts raised"),
    ("alerts_missed", "drifted weeks nobody judged"),
    ("models_trained", "models trained"),
    ("served_version", "version served at the end"),
    ("served_passed_gate", "served version passed the gate"),
    ("served_test_ap", "served version's test AP"),
)


def outcome_cell(value: object) -> str:
    """A figure of a demo run as the comparison table shows it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def outcomes_table(outcomes: list[dict[str, object]]) -> Table:
    """Demo runs side by side (a healthy run beside each "break it" switch): one column a run."""
    table = Table(title="Demo runs side by side")
    table.add_column("figure")
    for outcome in outcomes:
        table.add_column(str(outcome.get("run", "?")))
    for key, label in OUTCOME_ROWS[1:]:
        table.add_row(label, *(outcome_cell(o.get(key)) for o in outcomes))
    return table
