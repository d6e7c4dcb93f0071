"""The demo storyline: the whole loop on a simulated calendar, offline, on the project's default stores.

1. simulate a history and ingest it (Prefect flow, DVC versions); 2. train the first model and make it
champion; 3. start the API; 4. replay two normal weeks through HTTP while the clock releases labels
as feedback; 5. monitor (no drift expected); 6. replay five weeks of a holiday season with a new fraud
pattern; 7. monitor: drift → retraining → gate → promotion, which the running API picks up.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
import pandas as pd
from rich.console import Console

from core.clock import read_today, set_today
from core.params import Params, load_params
from core.settings import Settings, ensure_api_keys
from core.simulator import SimulationConfig, write_simulation
from fraudops import render, stages
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
    pause: bool = False
    switches: tuple[str, ...] = ()  # "break it" switches, see SWITCHES
    # "all" runs the story in one process; compose.yaml runs it as two services around its API:
    # "setup" (simulate, ingest, first model) before the API starts, then "traffic" against it
    phase: Literal["all", "setup", "traffic"] = "all"
    api_url: str | None = None  # an API already running there serves the traffic (no own process)


# Teaching switches: each removes one safeguard of the loop so a run shows what it costs. They live in
# the demo's wiring only (which flow it calls, which process serves), never in the pipelines or the API.
SWITCHES = {
    "no-monitoring": "nothing watches the traffic: no drift report, no live AP, no retraining",
    "no-retraining": "monitoring runs and alerts, but no new model is trained",
    "promote-latest": "every monitoring pass retrains and the new model serves, whatever the gate says",
    "feature-mismatch": "the API computes tx_amount in cents while training used currency units",
}
# The course page to read after each step of `fraudops demo --pause`.
PAGES = {
    "simulate": ("docs/course/01-data.md",),
    "ingest": ("docs/course/01-data.md",),
    "train": ("docs/course/02-features.md", "docs/course/03-training.md", "docs/course/04-registry.md"),
    "serve": ("docs/course/05-serving.md",),
    "monitor": ("docs/course/07-monitoring.md",),
    "retrain": ("docs/course/08-retraining.md", "docs/course/04-registry.md"),
}


class Story:
    """Shared state of one demo run: settings, params, the simulated world and what happened."""

    def __init__(self, settings: Settings, cfg: DemoConfig, console: Console) -> None:
        self.settings, self.cfg, self.console = settings, cfg, console
        self.params: Params = load_params(settings.project_dir / "params.yaml")
        self.world = settings.project_dir / "demo" / "world"
        self.base_url = cfg.api_url or f"http://{settings.api_host}:{cfg.port}"
        self.trainings: list[TrainingOutcome] = []
        self.monitoring: list[MonitoringSummary] = []
        self.step_no = 0
        self.pages: tuple[str, ...] = ()
        self.missed_alerts = 0  # drifted weeks nobody judged (--no-monitoring)
        self.judged = 0  # monitoring passes that could act (a hindsight pass cannot)

    def step(self, text: str, stage: str) -> None:
        """Start a step; with ``--pause``, first stop after the previous one."""
        self.pause()
        self.step_no += 1
        self.pages = PAGES[stage]
        self.console.rule(f"[bold]{self.step_no}. {text}")

    def pause(self) -> None:
        """``--pause``: name the course pages of the step just done and wait for Enter."""
        if not self.cfg.pause or not self.pages:
            return
        read = ", ".join(self.pages)
        if not sys.stdin.isatty():
            self.console.print(f"[bold]paused[/]: read {read} (stdin is not a terminal: continuing)")
            return
        self.console.input(f"[bold]paused[/]: read {read}, then press Enter to continue ")

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
    if "feature-mismatch" in story.cfg.switches:  # the teaching entry point, in this process only
        from fraudops.teaching_api import ENV

        env[ENV] = "tx_amount_cents"
        cmd = [sys.executable, "-m", "fraudops.teaching_api", "--port", str(story.cfg.port)]
        story.console.print(f"[yellow]break it[/]: {SWITCHES['feature-mismatch']} ({ENV} set for the API)")
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
    story: Story, proc: subprocess.Popen[bytes] | None, log_path: Path | None, timeout_s: float = 120
) -> None:
    """Poll /health/ready until the API answers 200 (``proc``: the demo's own API process, if any)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise UserError(f"the API exited with code {proc.returncode}: see {log_path}")
        try:
            if httpx.get(f"{story.base_url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    where = f"see {log_path}" if log_path else "see its log (`docker compose logs api`)"
    raise UserError(f"the API at {story.base_url} was not ready within {timeout_s:.0f} s: {where}")


def release_due_labels(story: Story, client: httpx.Client, today: dt.date) -> int:
    """Send, as feedback, the labels of the day whose delay has just passed on ``today``."""
    sent = stages.release_labels(
        client, story.settings, story.world, today, story.params.data.label_delay_days, since=None
    )
    return sum(sent.values())


def replay(story: Story, tx: pd.DataFrame, title: str) -> stages.ReplayTotals:
    """Score each day's transactions through HTTP, then advance the clock a day and send due labels."""
    with httpx.Client(base_url=story.base_url, timeout=story.settings.request_timeout_s) as client:
        totals = stages.score_days(
            client,
            story.settings,
            tx,
            story.console,
            title,
            lambda today: release_due_labels(story, client, today),
        )
    story.console.print(
        f"scored {totals.scored:,} transactions over HTTP ({totals.flagged:,} flagged); "
        f"{totals.labels:,} delayed labels sent to /v1/feedback; clock now {story.today}"
    )
    return totals


def monitor_once(story: Story, retrain: bool = True) -> MonitoringSummary:
    """Run the monitoring flow (which runs the retraining flow when the policy says so)."""
    from monitoring.flow import monitoring_flow

    with story.console.status(
        "monitoring flow: Evidently drift report, delayed-label performance, policy..."
    ):
        summary = monitoring_flow(today=None, retrain=retrain)
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
    """Run the storyline end to end (or one phase of it) and print the summary."""
    started = time.monotonic()
    story = Story(settings, cfg, console)
    ensure_api_keys(settings)
    if cfg.phase == "traffic":
        return run_traffic_phase(story, started)
    if cfg.phase == "setup" and setup_done(story):
        return story
    console.print(
        f"[bold]fraudops demo[/]: {cfg.customers:,} customers, {cfg.terminals:,} terminals, seed {cfg.seed}. "
        "Starting from a clean slate (data/, stores/, reports/, demo/ are regenerated)."
    )
    reset_generated(settings.project_dir)
    for switch in cfg.switches:
        console.print(f"[yellow]break it[/] --{switch}: {SWITCHES[switch]}")
    story.step(f"Simulate {cfg.history_days} days of history", "simulate")
    simulate_period(story, cfg.history_days, ("none",), cfg.seed)
    set_today(settings.clock_file, cfg.start_date + dt.timedelta(days=cfg.history_days))
    story.step("Ingest and validate (Prefect flow), version with DVC", "ingest")
    ingest_world(story)
    story.step("Train the first model, log it to MLflow, gate it, register it", "train")
    first = train_model(story, "initial model")
    if not first.decision.promote:
        raise UserError(
            "the first model did not pass the gate, so there is nothing to serve: try another --seed"
        )
    if cfg.phase == "setup":
        setup_marker(settings).write_text(first.model_dump_json(indent=2) + "\n", encoding="utf-8")
        console.print(
            f"Setup done in {time.monotonic() - started:.0f} s: version {first.version} is champion; "
            "the API can start on this data."
        )
        return story
    story.step("Start the API", "serve")
    proc = start_api(story)
    try:
        run_traffic(story)
    finally:
        stop_server(proc, timeout_s=20.0)
    story.pause()
    print_summary(story, time.monotonic() - started)
    return story


def setup_marker(settings: Settings) -> Path:
    """Written by a finished setup phase: the first model's training outcome."""
    path = settings.reports_dir / "demo" / "setup.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def summary_path(settings: Settings) -> Path:
    return settings.reports_dir / "demo" / "summary.json"


def setup_done(story: Story) -> bool:
    """A setup phase that already finished on this project (compose runs it again on every `up`)."""
    marker = setup_marker(story.settings)
    if not marker.exists():
        return False
    story.console.print(
        f"Setup already done on this project ({marker}): keeping its data and models. "
        "`docker compose down -v` starts over."
    )
    return True


def run_traffic_phase(story: Story, started: float) -> Story:
    """The story after setup, against a running API: traffic, monitoring, retraining, promotion."""
    from pipelines.results import TrainingOutcome

    settings, console = story.settings, story.console
    marker = setup_marker(settings)
    if not marker.exists():
        raise UserError(
            f"no finished setup phase in {settings.project_dir}: run `fraudops demo --phase setup`"
        )
    done = summary_path(settings)
    if done.exists():
        outcome = json.loads(done.read_text(encoding="utf-8"))
        console.print(
            f"The demo already finished on this project; its summary ({done}) follows. "
            "`docker compose down -v` starts over."
        )
        console.print(render.outcomes_table([outcome]))
        return story
    story.trainings.append(TrainingOutcome.model_validate_json(marker.read_text(encoding="utf-8")))
    if story.cfg.api_url is None:
        raise UserError("the traffic phase scores through a running API: pass --api-url")
    with console.status(f"waiting for the API at {story.base_url} ..."):
        wait_until_ready(story, None, None)
    meta = httpx.get(f"{story.base_url}/v1/metadata", timeout=5).json()
    console.print(f"API ready at {story.base_url}: serving {meta['name']} version {meta['version']}")
    run_traffic(story)
    print_summary(story, time.monotonic() - started)
    return story


def run_traffic(story: Story) -> None:
    """Normal weeks, a monitoring pass, the drifted period, a monitoring pass, the hot reload."""
    cfg = story.cfg
    story.step(f"Replay {cfg.normal_days} normal days through the API", "serve")
    replay(story, simulate_period(story, cfg.normal_days, ("none",), cfg.seed + 1), "normal traffic")
    story.step("Ingest the new days and the released labels", "ingest")
    ingest_world(story)
    watch(story, "Monitor: the normal weeks")
    story.step(f"Replay {cfg.drift_days} days of a holiday season with a new fraud pattern", "serve")
    replay(
        story,
        simulate_period(story, cfg.drift_days, ("holiday", "new-pattern"), cfg.seed + 2),
        "drifted traffic",
    )
    story.step("Ingest the new days and the released labels", "ingest")
    ingest_world(story)
    summary = watch(story, "Monitor: the drifted weeks")
    if "no-monitoring" in cfg.switches:
        story.missed_alerts += 1
        story.step("Hindsight: what monitoring would have seen (measured, no action taken)", "monitor")
        monitor_once(story, retrain=False)
        return
    promoted = summary.retrain.version if summary and summary.retrain and summary.retrain.promoted else None
    if "promote-latest" in cfg.switches:
        promoted = story.trainings[-1].version
    if promoted is not None:
        story.step("The running API picks up the new champion", "retrain")
        served = wait_for_version(story, promoted)
        story.console.print(f"/v1/metadata now reports version {served}: promoted without a restart")


def watch(story: Story, title: str) -> MonitoringSummary | None:
    """A monitoring pass as the switches allow: none, alert-only, or with the retraining they wire."""
    switches = story.cfg.switches
    if "no-monitoring" in switches:
        story.console.print(f"[yellow]break it[/] --no-monitoring: skipped '{title}'")
        return None
    story.step(title, "monitor")
    story.judged += 1
    if "promote-latest" in switches:
        summary = monitor_once(story, retrain=False)
        story.step("Retrain and promote the newest model, gate or no gate", "retrain")
        outcome = train_model(story, "promote-latest: every monitoring pass")
        if not outcome.decision.promote:
            force_champion(story, outcome.version)
        return summary
    return monitor_once(story, retrain="no-retraining" not in switches)


def force_champion(story: Story, version: str) -> str:
    """--promote-latest: point the champion alias at ``version`` without asking the gate."""
    from core.registry import registry_client
    from pipelines.gate import GateDecision, apply_decision

    client = registry_client(story.settings.tracking_uri)
    forced = GateDecision(promote=True, reasons=["promote-latest: the gate was not asked"])
    apply_decision(client, story.settings.model_name, version, forced)
    story.console.print(f"[yellow]break it[/] --promote-latest: version {version} is champion, gate ignored")
    return version


def run_outcome(story: Story, champion: str | None) -> dict[str, Any]:
    """The figures that compare runs: live AP on the drifted weeks, what serves, alerts raised and missed."""
    last = story.monitoring[-1] if story.monitoring else None
    perf = last.performance if last else None
    served = next((t for t in story.trainings if t.version == champion), None)
    return {
        "run": "+".join(story.cfg.switches) or "healthy",
        "drift_seen": bool(last and last.drift and last.drift.drifted),
        "live_ap_drifted": perf.average_precision if perf else None,
        "expected_ap": perf.expected.average_precision if perf and perf.expected else None,
        "alerts_raised": sum(
            s.decision.action in ("retrain", "alert") for s in story.monitoring[: story.judged]
        ),
        "alerts_missed": story.missed_alerts,
        "models_trained": len(story.trainings),
        "served_version": champion,
        "served_passed_gate": served.decision.promote if served else None,
        "served_test_ap": served.metrics["average_precision"] if served else None,
    }


def print_summary(story: Story, elapsed_s: float) -> None:
    """Model versions with metrics, monitoring decisions with reasons, where to look next."""
    console = story.console
    console.rule("[bold]Summary")
    champion = current_champion_version(story.settings)
    render.print_models(console, story.trainings, champion)
    render.print_decisions(console, story.monitoring)
    outcome = run_outcome(story, champion)
    path = summary_path(story.settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(outcome, indent=2) + "\n", encoding="utf-8")
    console.print(render.outcomes_table([outcome]))
    console.print(
        f"This run's figures: {path} (`fraudops demo --compare A.json --compare B.json` sets runs side by side)"
    )
    root = story.settings.project_dir
    if story.cfg.api_url is not None:  # compose.yaml's demo service: the servers are the next stop
        console.print(
            f"Finished in {elapsed_s:.0f} s. Open the MLflow UI http://127.0.0.1:5000 (runs, registry), "
            "the Prefect UI http://127.0.0.1:4200 (flow runs), the API http://127.0.0.1:8000/docs. "
            f"HTML reports on the workspace volume: `docker compose exec api ls {story.settings.reports_dir}/monitoring`"
        )
        return
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
