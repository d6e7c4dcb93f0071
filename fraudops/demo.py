"""The demo storyline: the whole loop on a simulated calendar, offline, on the project's default stores.

1. simulate a history and ingest it (Prefect flow, DVC versions); 2. train the first model and make it
champion; 3. start the API; 4. replay two normal weeks through HTTP while the clock releases labels
as feedback; 5. monitor (no drift expected); 6. replay five weeks of a holiday season with a new fraud
pattern; 7. monitor: drift → retraining → gate → promotion, which the running API picks up.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.clock import read_today, set_today
from core.params import Params, load_params
from core.schemas import TRANSACTION_COLUMNS
from core.settings import Settings, ensure_api_keys
from core.simulator import SimulationConfig, write_simulation
from fraudops import render
from fraudops.errors import UserError
from fraudops.schedule import stop_server

if TYPE_CHECKING:
    from monitoring.summary import MonitoringSummary
    from pipelines.ingest import IngestReport
    from pipelines.training import TrainingOutcome

GENERATED = (
    "data/raw",
    "data/labels",
    "data/validated",
    "data/features",
    "data/quarantine",
    "data/model",
    "stores",
    "reports",
)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the storyline; the defaults finish in a few minutes on 2 cores."""

    customers: int = 2000
    terminals: int = 4000
    seed: int = 7
    port: int = 8000
    start_date: dt.date = SimulationConfig().start_date
    history_days: int = 84
    normal_days: int = 14
    drift_days: int = 35
    api_poll_s: float = 2.0


class Story:
    """Shared state of one demo run: settings, params, the simulated world and what happened."""

    def __init__(self, settings: Settings, cfg: DemoConfig, console: Console) -> None:
        self.settings, self.cfg, self.console = settings, cfg, console
        self.params: Params = load_params(settings.project_dir / "params.yaml")
        self.world = settings.project_dir / "demo" / "world"
        self.base_url = f"http://{settings.api_host}:{cfg.port}"
        self.trainings: list[TrainingOutcome] = []
        self.monitoring: list[MonitoringSummary] = []
        self.step_no = 0

    def step(self, text: str) -> None:
        self.step_no += 1
        self.console.rule(f"[bold]{self.step_no}. {text}")

    @property
    def today(self) -> dt.date:
        today = read_today(self.settings.clock_file)
        if today is None:
            raise UserError("the simulated clock is not set")
        return today


def reset_generated(root: Path) -> None:
    """Start from a clean slate: the demo owns data/, stores/, reports/ and demo/ (all git-ignored).

    DVC's pointer files (``data/*.dvc``) stay: `dvc add` rewrites them, so a committed one is updated,
    never deleted.
    """
    for rel in (*GENERATED, "demo"):
        shutil.rmtree(root / rel, ignore_errors=True)


def simulate_period(story: Story, days: int, scenarios: tuple[str, ...], seed: int) -> pd.DataFrame:
    """Continue the simulated world by ``days`` days."""
    cfg = SimulationConfig(
        customers=story.cfg.customers,
        terminals=story.cfg.terminals,
        days=days,
        start_date=story.cfg.start_date,
        seed=seed,
        scenarios=scenarios,
    )
    used, tx = write_simulation(story.world, cfg)
    story.console.print(
        f"simulated {days} days from {used.start_date} ({', '.join(scenarios)}): "
        f"{len(tx):,} transactions, fraud rate {tx['tx_fraud'].mean():.2%}"
    )
    return tx


def ingest_world(story: Story) -> IngestReport:
    """Run the ingest flow on the world folder (new days and newly released labels only)."""
    from pipelines.flows import ingest_flow

    with story.console.status("ingest flow: validating batches and versioning them with DVC..."):
        report = ingest_flow([str(story.world)])
    render.print_ingest_report(story.console, report)
    return report


def train_model(story: Story, reason: str) -> TrainingOutcome:
    """Run the training flow and show its result."""
    from pipelines.flows import training_flow

    with story.console.status("training flow: dvc repro, fit, evaluate, MLflow, gate..."):
        outcome = training_flow(reason)
    render.print_training(story.console, outcome)
    story.trainings.append(outcome)
    return outcome


def start_api(story: Story) -> subprocess.Popen[bytes]:
    """Start ``fraudops serve`` as a separate uvicorn process and wait until it is ready."""
    log_dir = story.settings.reports_dir / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FRAUDOPS_RELOAD_INTERVAL_S": str(story.cfg.api_poll_s)}
    cmd = [sys.executable, "-m", "fraudops", "serve", "--port", str(story.cfg.port)]
    with (log_dir / "api.log").open("wb") as log_file:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=story.settings.project_dir
        )
    try:
        with story.console.status(f"starting the API on {story.base_url} ..."):
            wait_until_ready(story, proc, log_dir / "api.log")
        meta = httpx.get(f"{story.base_url}/v1/metadata", timeout=5).json()
    except BaseException:
        stop_server(proc, timeout_s=20.0)
        raise
    story.console.print(f"API ready at {story.base_url}: serving {meta['name']} version {meta['version']}")
    return proc


def wait_until_ready(
    story: Story, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 120
) -> None:
    """Poll /health/ready until the API answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"the API exited with code {proc.returncode}: see {log_path}")
        try:
            if httpx.get(f"{story.base_url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise UserError(f"the API was not ready within {timeout_s:.0f} s: see {log_path}")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame[TRANSACTION_COLUMNS].copy()
    out["tx_datetime"] = out["tx_datetime"].map(lambda t: t.isoformat())
    return [{str(k): v for k, v in row.items()} for row in out.to_dict(orient="records")]


def release_labels(story: Story, client: httpx.Client) -> int:
    """Send, as feedback, the labels of the day whose delay has just passed."""
    day = story.today - dt.timedelta(days=story.params.data.label_delay_days)
    path = story.world / "labels" / f"{day}.parquet"
    if not path.exists():
        return 0
    labels = pd.read_parquet(path)
    sent = 0
    for start in range(0, len(labels), story.settings.max_batch_rows):
        part = labels.iloc[start : start + story.settings.max_batch_rows]
        resp = client.post(
            "/v1/feedback",
            json={"labels": part.to_dict(orient="records")},
            headers={"X-API-Key": story.settings.feedback_api_key},
        )
        resp.raise_for_status()
        sent += int(resp.json()["accepted"])
    return sent


def replay(story: Story, tx: pd.DataFrame, title: str) -> dict[str, int]:
    """Score each day's transactions through HTTP, then advance the clock a day and send due labels."""
    totals = {"scored": 0, "flagged": 0, "labels": 0}
    days = sorted(tx["tx_datetime"].dt.date.unique())
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with (
        httpx.Client(base_url=story.base_url, timeout=story.settings.request_timeout_s) as client,
        Progress(*columns, console=story.console) as progress,
    ):
        task = progress.add_task(title, total=len(days))
        for day in days:
            part = tx[tx["tx_datetime"].dt.date == day]
            for start in range(0, len(part), story.settings.max_batch_rows):
                chunk = part.iloc[start : start + story.settings.max_batch_rows]
                resp = client.post("/v1/score/batch", json={"transactions": _records(chunk)})
                resp.raise_for_status()
                preds = resp.json()["predictions"]
                totals["scored"] += len(preds)
                totals["flagged"] += sum(p["is_fraud"] for p in preds)
            set_today(story.settings.clock_file, day + dt.timedelta(days=1))
            totals["labels"] += release_labels(story, client)
            progress.update(task, advance=1, description=f"{title} — {day}")
    story.console.print(
        f"scored {totals['scored']:,} transactions over HTTP ({totals['flagged']:,} flagged); "
        f"{totals['labels']:,} delayed labels sent to /v1/feedback; clock now {story.today}"
    )
    return totals


def monitor_once(story: Story) -> MonitoringSummary:
    """Run the monitoring flow (which runs the retraining flow when the policy says so)."""
    from monitoring.flow import monitoring_flow

    with story.console.status(
        "monitoring flow: Evidently drift report, delayed-label performance, policy..."
    ):
        summary = monitoring_flow(today=None, retrain=True)
    render.print_monitoring(story.console, summary)
    story.monitoring.append(summary)
    outcome = summary.retrain.outcome if summary.retrain else None
    if outcome is not None:
        render.print_training(story.console, outcome)
        story.trainings.append(outcome)
    return summary


def wait_for_version(story: Story, version: str, timeout_s: float = 60) -> str:
    """Wait until the running API serves ``version`` (it polls the registry; /admin/reload as a nudge)."""
    deadline, nudged = time.monotonic() + timeout_s, False
    with httpx.Client(base_url=story.base_url, timeout=10) as client:
        while time.monotonic() < deadline:
            served = str(client.get("/v1/metadata").json()["version"])
            if served == version:
                return served
            if not nudged and time.monotonic() > deadline - timeout_s / 2:
                client.post("/admin/reload", headers={"X-API-Key": story.settings.admin_api_key})
                nudged = True
            time.sleep(0.5)
    raise UserError(f"the API still serves version {served}, not {version}: see reports/demo/api.log")


def current_champion_version(settings: Settings) -> str | None:
    """The version the registry's champion alias points at now."""
    from core.registry import CHAMPION, registry_client

    try:
        return str(
            registry_client(settings.tracking_uri)
            .get_model_version_by_alias(settings.model_name, CHAMPION)
            .version
        )
    except Exception:  # the summary still prints without the registry
        return None


def run_demo(settings: Settings, cfg: DemoConfig, console: Console) -> Story:
    """Run the storyline end to end and print the summary."""
    started = time.monotonic()
    story = Story(settings, cfg, console)
    ensure_api_keys(settings)
    console.print(
        f"[bold]fraudops demo[/]: {cfg.customers:,} customers, {cfg.terminals:,} terminals, seed {cfg.seed}. "
        "Starting from a clean slate (data/, stores/, reports/, demo/ are regenerated)."
    )
    reset_generated(settings.project_dir)
    story.step(f"Simulate {cfg.history_days} days of history")
    simulate_period(story, cfg.history_days, ("none",), cfg.seed)
    set_today(settings.clock_file, cfg.start_date + dt.timedelta(days=cfg.history_days))
    story.step("Ingest and validate (Prefect flow), version with DVC")
    ingest_world(story)
    story.step("Train the first model, log it to MLflow, gate it, register it")
    first = train_model(story, "initial model")
    if not first.decision.promote:
        raise UserError(
            "the first model did not pass the gate, so there is nothing to serve: try another --seed"
        )
    story.step("Start the API")
    proc = start_api(story)
    try:
        run_traffic(story)
    finally:
        stop_server(proc, timeout_s=20.0)
    print_summary(story, time.monotonic() - started)
    return story


def run_traffic(story: Story) -> None:
    """Normal weeks, a monitoring pass, the drifted period, a monitoring pass, the hot reload."""
    cfg = story.cfg
    story.step(f"Replay {cfg.normal_days} normal days through the API")
    replay(story, simulate_period(story, cfg.normal_days, ("none",), cfg.seed + 1), "normal traffic")
    story.step("Ingest the new days and the released labels")
    ingest_world(story)
    story.step("Monitor: the normal weeks")
    monitor_once(story)
    story.step(f"Replay {cfg.drift_days} days of a holiday season with a new fraud pattern")
    replay(
        story,
        simulate_period(story, cfg.drift_days, ("holiday", "new-pattern"), cfg.seed + 2),
        "drifted traffic",
    )
    story.step("Ingest the new days and the released labels")
    ingest_world(story)
    story.step("Monitor: the drifted weeks")
    retrain = monitor_once(story).retrain
    if retrain is not None and retrain.promoted and retrain.version is not None:
        story.step("The running API picks up the new champion")
        served = wait_for_version(story, retrain.version)
        story.console.print(f"/v1/metadata now reports version {served}: promoted without a restart")


def print_summary(story: Story, elapsed_s: float) -> None:
    """Model versions with metrics, monitoring decisions with reasons, where to look next."""
    console = story.console
    console.rule("[bold]Summary")
    champion = current_champion_version(story.settings)
    render.print_models(console, story.trainings, champion)
    render.print_decisions(console, story.monitoring)
    root = story.settings.project_dir
    console.print(
        f"Finished in {elapsed_s:.0f} s. HTML reports: {story.settings.reports_dir / 'monitoring'}\n"
        "Next: `make mlflow-ui` (runs, metrics, registry; each monitoring run in the experiment "
        "fraudops-monitoring), `make prefect-ui` (flow runs), "
        "`make serve` (the champion on http://127.0.0.1:8000/docs), `fraudops monitor history`.\n"
        "`dvc metrics show` and `dvc plots show` (PR curve) show the last training stage.\n"
        f"DVC recorded the data versions in {root / 'data' / 'raw.dvc'}, {root / 'data' / 'labels.dvc'} and "
        f"{root / 'dvc.lock'}, and the stage's metrics in {root / 'metrics'}: "
        "`git add data/*.dvc dvc.lock metrics` to commit them (the demo never commits for you)."
    )
