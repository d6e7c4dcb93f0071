"""The ``fraudops`` command line: every stage of the loop, and the demo that runs them all."""

from __future__ import annotations

import datetime as dt
import enum
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.params import load_params
from core.settings import STEP_LOGGERS, Settings, apply_tool_environment, get_settings
from core.simulator import SimulationConfig
from fraudops import render
from fraudops.errors import UserError, ensure_port_free, err_console, friendly_errors
from fraudops.schedule import DEFAULT_PORT as PREFECT_PORT

if TYPE_CHECKING:
    import httpx
    from prefect.deployments.runner import RunnerDeployment

    from fraudops.schedule import PrefectApi

console = Console()
if not console.is_terminal:  # logs and pipes: wide enough for the summary tables
    console.width = 140
app = typer.Typer(
    help="fraudops: card-fraud MLOps loop — simulate, ingest, train, serve, monitor, retrain, promote.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
monitor_app = typer.Typer(
    help="Judge drift and performance of the champion; retrain when the policy says so."
)
app.add_typer(monitor_app, name="monitor")
clock_app = typer.Typer(help="Show or move the simulated calendar (labels are released as it advances).")
app.add_typer(clock_app, name="clock")
labels_app = typer.Typer(help="Send the delayed fraud labels to the running API as feedback.")
app.add_typer(labels_app, name="labels")
DEFAULT_WORLD = Path("demo/world")

SIM_DEFAULTS = SimulationConfig()
MONITOR_CRON = Settings.model_fields["monitor_cron"].default
QUIET_LOGGERS = ("mlflow", "dvc", "alembic", "urllib3", "httpx", "prefect", "distributed", "skops")


@app.callback()
def configure() -> None:
    """Keep tool state inside the project and telemetry off before any tool is imported."""
    apply_tool_environment(get_settings())
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    # Prefect keeps its run logs in its own store (the UI shows them); the CLI reports outcomes itself
    handler.addFilter(lambda record: not record.name.startswith("prefect"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in STEP_LOGGERS:  # INFO for the Prefect UI's run logs; the terminal still shows warnings
        logging.getLogger(name).setLevel(logging.INFO)


def prepare_prefect() -> None:
    """Prefect creates only the last folder of its home; without it the temporary server cannot start."""
    Path(os.environ.get("PREFECT_HOME", get_settings().prefect_home)).mkdir(parents=True, exist_ok=True)


def parse_day(value: str, option: str) -> dt.date:
    """A YYYY-MM-DD option value, or a one-line error."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD", param_hint=option) from None


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Folder to write (continues the days already there).")],
    customers: Annotated[
        int, typer.Option(min=1, help="Number of customers (cards).")
    ] = SIM_DEFAULTS.customers,
    terminals: Annotated[int, typer.Option(min=1, help="Number of terminals.")] = SIM_DEFAULTS.terminals,
    days: Annotated[int, typer.Option(min=1, max=3660, help="Days to simulate.")] = SIM_DEFAULTS.days,
    start_date: Annotated[
        str, typer.Option(help="First day, YYYY-MM-DD (ignored when OUT holds days).")
    ] = SIM_DEFAULTS.start_date.isoformat(),
    seed: Annotated[int, typer.Option(help="Seed of the transactions and fraud draws.")] = SIM_DEFAULTS.seed,
    population_seed: Annotated[
        int, typer.Option(help="Seed of the customers and terminals.")
    ] = SIM_DEFAULTS.population_seed,
    radius: Annotated[
        float, typer.Option(min=0.1, help="Customers use terminals within this distance (grid 100x100).")
    ] = SIM_DEFAULTS.radius,
    compromised_terminals: Annotated[
        float, typer.Option(min=0, help="Terminals compromised per day per 10,000 terminals (S2).")
    ] = SIM_DEFAULTS.compromised_terminals_per_10000,
    compromised_cards: Annotated[
        float, typer.Option(min=0, help="Cards compromised per day per 5,000 customers (S3).")
    ] = SIM_DEFAULTS.compromised_cards_per_5000,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="none, holiday, new-pattern or control; repeat to combine (e.g. holiday + new-pattern)."
        ),
    ] = None,
) -> None:
    """Simulate card transactions and their fraud labels into OUT/transactions and OUT/labels, one file a day."""
    from core.simulator import SCENARIOS, write_simulation

    chosen = tuple(scenario or ["none"])
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        raise typer.BadParameter(
            f"unknown scenario {unknown[0]!r}: choose from {', '.join(SCENARIOS)}", param_hint="--scenario"
        )
    cfg = SimulationConfig(
        customers=customers,
        terminals=terminals,
        days=days,
        start_date=parse_day(start_date, "--start-date"),
        seed=seed,
        population_seed=population_seed,
        radius=radius,
        scenarios=chosen,
        compromised_terminals_per_10000=compromised_terminals,
        compromised_cards_per_5000=compromised_cards,
    )
    with friendly_errors(), console.status("simulating..."):
        used, tx = write_simulation(out, cfg)
    table = Table(title=f"Simulated {out}")
    for col in ("days", "first day", "transactions", "fraud rate", "scenarios"):
        table.add_column(col)
    table.add_row(
        str(days), str(used.start_date), f"{len(tx):,}", f"{tx['tx_fraud'].mean():.2%}", ", ".join(chosen)
    )
    console.print(table)


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Day files or folders in the `fraudops simulate` layout.")
    ],
) -> None:
    """Validate day batches, add them to the immutable raw store and version them with DVC (Prefect flow).

    Layout: a folder made by `fraudops simulate` (transactions/YYYY-MM-DD.parquet and
    labels/YYYY-MM-DD.parquet), a folder of transaction days, a labels/ folder, or day files (a file
    in a folder named labels holds labels). Other files in those folders are listed as ignored, not read.

    Transactions, no other column: transaction_id (text), tx_datetime (timestamp, UTC, on the file's
    day), customer_id (integer >= 0), terminal_id (integer >= 0), tx_amount (number, 0 to 10,000,000).

    Labels: transaction_id (text), tx_fraud (0 or 1); optional: tx_fraud_scenario (integer >= 0,
    0 = genuine; null when left out). A day's labels are taken once the clock is a label delay past it.

    Duplicates and conflicts: an exact copy of a row, in one file or on a later day, is kept once and
    counted as a duplicate. Rows of one file sharing a transaction_id but differing are all quarantined
    as a conflict; a later day's row that differs from the one accepted earlier is quarantined, and the
    earlier one stays. Invalid rows are quarantined with their reason; an unreadable or empty file, or a
    missing or unknown column, rejects the whole file.
    """
    from pipelines.flows import ingest_flow

    prepare_prefect()

    with friendly_errors(), console.status("ingesting..."):
        report = ingest_flow([str(p) for p in paths])
    render.print_ingest_report(console, report)
    if report.rejected:
        raise typer.Exit(1)


class FeatureEngine(enum.StrEnum):
    """``fraudops features --engine``: one process, or Dask partitions by card and by terminal."""

    single = "single"
    dask = "dask"


@app.command()
def features(
    world: Annotated[
        Path, typer.Option(help="The folder `fraudops simulate --out` wrote (transactions/ and labels/).")
    ],
    out: Annotated[Path, typer.Option(help="The feature table to write (a Parquet file).")],
    engine: Annotated[
        FeatureEngine | None,
        typer.Option(help="single: one process; dask: a Dask cluster (default FRAUDOPS_FEATURE_ENGINE)."),
    ] = None,
) -> None:
    """Compute the model's features of a simulated world, in one process or on Dask (the same table).

    The dask engine shuffles the days by card and by terminal, so each partition holds whole
    histories, on a local cluster (FRAUDOPS_DASK_WORKERS, FRAUDOPS_DASK_WORKER_MEMORY) or the
    scheduler at FRAUDOPS_DASK_SCHEDULER. The project's own features stage (`dvc repro`, `fraudops
    train`) reads FRAUDOPS_FEATURE_ENGINE.
    """
    import time

    from core.params import feature_names
    from pipelines.features import world_files, write_features

    settings = get_settings()
    if engine is not None:
        settings = settings.model_copy(update={"feature_engine": engine.value})
    params = load_params(settings.project_dir / "params.yaml")
    started = time.perf_counter()
    with friendly_errors(), console.status(f"computing features ({settings.feature_engine} engine)..."):
        tx_files, label_files = world_files(world)
        if not tx_files:
            raise UserError(f"{world / 'transactions'} holds no day files: `fraudops simulate --out {world}`")
        rows = write_features(tx_files, label_files, params, out, settings)
    console.print(
        f"{rows:,} transactions x {len(feature_names(params.features))} features → {out} "
        f"({settings.feature_engine} engine, {time.perf_counter() - started:.1f} s)"
    )


@app.command()
def train(
    reason: Annotated[str, typer.Option(help="Why this training runs (logged with the run).")] = "manual",
) -> None:
    """Reproduce the DVC stages, train a challenger, gate it against the champion and register it (Prefect flow)."""
    from pipelines.flows import training_flow

    prepare_prefect()

    with friendly_errors(), console.status("training..."):
        outcome = training_flow(reason)
    render.print_training(console, outcome)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default 8000).")] = None,
) -> None:
    """Serve the champion model over HTTP (FastAPI + uvicorn); it follows promotions without a restart."""
    import uvicorn

    settings = get_settings()
    host, port = host or settings.api_host, port or settings.api_port
    with friendly_errors():
        load_params(settings.project_dir / "params.yaml")  # fail here, in one line, not in the server
        ensure_port_free(host, port)
    console.print(f"serving on http://{host}:{port}  (OpenAPI: /docs, health: /health/ready)")
    uvicorn.run(
        "serving.app:create_app", factory=True, host=host, port=port, access_log=False, log_level="warning"
    )


@monitor_app.callback(invoke_without_command=True)
def monitor(
    ctx: typer.Context,
    today: Annotated[
        str | None, typer.Option(help="Judge as of this simulated day (default: the clock).")
    ] = None,
    retrain: Annotated[bool, typer.Option(help="Run the retraining flow when the policy says so.")] = True,
) -> None:
    """Compare the last week of scored traffic with the training reference (Evidently) and judge live performance."""
    if ctx.invoked_subcommand is not None:
        return
    from monitoring.flow import monitoring_flow

    prepare_prefect()

    if today is not None:
        parse_day(today, "--today")
    with friendly_errors(), console.status("monitoring..."):
        summary = monitoring_flow(today=today, retrain=retrain)
    render.print_monitoring(console, summary)


@monitor_app.command("history")
def monitor_history() -> None:
    """List every monitoring decision with its evidence, its reasons and what the retraining came to."""
    from monitoring.history import read_history

    with friendly_errors():
        runs = read_history(get_settings())
    render.print_decisions(console, runs, reports=False)


@app.command()
def schedule(
    cron: Annotated[
        str | None,
        typer.Option(
            help=f"When monitoring runs, cron in UTC (default: FRAUDOPS_MONITOR_CRON, {MONITOR_CRON!r})."
        ),
    ] = None,
    interval: Annotated[
        int | None,
        typer.Option(min=10, help="Run monitoring every N seconds instead (e.g. 300 to watch it work)."),
    ] = None,
    retrain: Annotated[bool, typer.Option(help="Scheduled runs retrain when the policy says so.")] = True,
    prefect_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the Prefect server to use or start on 127.0.0.1.")
    ] = PREFECT_PORT,
) -> None:
    """Serve the flows with Prefect until Ctrl-C: monitoring on a schedule, training on demand.

    Schedules need a Prefect server: the one PREFECT_API_URL names, else the one on
    127.0.0.1:--prefect-port (`make prefect-ui`), else one started here and stopped on exit.
    """
    from fraudops import schedule as sched

    settings = get_settings()
    prepare_prefect()
    cron = cron or settings.monitor_cron
    timeout_s = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))
    with friendly_errors():
        deployments = sched.build_deployments(cron, interval, retrain)  # a bad cron fails here, in one line
        with console.status("connecting to the Prefect server (starting one if none runs)..."):
            api = sched.find_or_start_server(settings, prefect_port, timeout_s)
    with sched.prefect_api(api):
        print_schedule(api, deployments, sched.describe_schedule(cron, interval))
        stopped = sched.serve(deployments)
    console.print("stopped: schedules paused" + (", Prefect server stopped" if api.process else ""))
    if not stopped:  # a stalled runner thread (or its executor's) would hold the interpreter's exit
        console.print("the Prefect runner had not finished its shutdown: exiting without it")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def print_schedule(api: PrefectApi, deployments: list[RunnerDeployment], when: str) -> None:
    """What is served, how to run it by hand, where to watch it and how to stop."""
    where = f"started by this command, log {api.log_path}" if api.process else "already running"
    console.print(f"Prefect API {api.url} ({where})")
    table = Table(title="Served deployments")
    for col in ("deployment", "runs", "parameters", "run it now"):
        table.add_column(col)
    for deployment in deployments:
        name = f"{deployment.flow_name}/{deployment.name}"
        params = ", ".join(f"{k}={v!r}" for k, v in deployment.parameters.items())
        runs = when if deployment.schedules else "on demand"
        table.add_row(name, runs, params, f"prefect deployment run '{name}'")
    console.print(table)
    console.print(
        f"Prefect UI: {api.ui_url}/deployments (flow runs, logs, 'Quick run'); "
        # the API beside the UI a browser opens: in compose the host's address, not the service name
        f"from another shell: PREFECT_API_URL={api.ui_url}/api .venv/bin/prefect deployment run '<deployment>'"
    )
    console.print(
        "Stop with Ctrl-C: the schedules are paused" + (", the server stops" if api.process else "") + "."
    )


@clock_app.command("show")
def clock_show() -> None:
    """Print the simulated today."""
    from core.clock import read_today

    console.print(str(read_today(get_settings().clock_file) or "not set"))


@clock_app.command("set")
def clock_set(day: Annotated[str, typer.Argument(help="YYYY-MM-DD")]) -> None:
    """Set the simulated today."""
    from core.clock import set_today

    set_today(get_settings().clock_file, parse_day(day, "DAY"))


def api_url(api: str | None) -> str:
    """The API to talk to: --api, else the one `fraudops serve` starts by default."""
    settings = get_settings()
    return (api or f"http://{settings.api_host}:{settings.api_port}").rstrip("/")


def api_client(url: str) -> httpx.Client:
    """An HTTP client for the API, checked to be up first (a clear line when nothing listens)."""
    import httpx

    timeout = get_settings().request_timeout_s
    try:  # a one-off request: a client that has sent one cannot be opened again by the caller's `with`
        httpx.get(f"{url.rstrip('/')}/health/ready", timeout=timeout).raise_for_status()
    except httpx.HTTPError as exc:
        raise UserError(f"the API at {url} is not ready ({exc}): start it with `fraudops serve`") from None
    return httpx.Client(base_url=url, timeout=timeout)


@app.command()
def replay(
    start: Annotated[str, typer.Option("--from", help="First day to score, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last day to score, YYYY-MM-DD.")],
    world: Annotated[
        Path, typer.Option(help="The folder `fraudops simulate --out` wrote (transactions/ is read).")
    ] = DEFAULT_WORLD,
    api: Annotated[str | None, typer.Option(help="The API's URL (default http://127.0.0.1:8000).")] = None,
) -> None:
    """Score a date range of simulated transactions through the running API, a day at a time.

    After each day the simulated clock moves to the next one, as time passes for a real API. Labels are
    not sent: `fraudops labels release` does that once their delay has passed.
    """
    from fraudops import stages

    settings = get_settings()
    first, last = parse_day(start, "--from"), parse_day(end, "--to")
    url = api_url(api)
    with friendly_errors():
        tx = stages.read_world_days(world, first, last)
        with api_client(url) as client:
            totals = stages.score_days(client, settings, tx, console, f"scoring {url}")
    console.print(
        f"scored {totals.scored:,} transactions of {len(totals.days)} days ({totals.flagged:,} flagged as "
        f"fraud, {totals.flagged / max(totals.scored, 1):.2%}); clock now {totals.days[-1] + dt.timedelta(days=1)}"
    )


@labels_app.command("release")
def labels_release(
    by: Annotated[str, typer.Option(help="Release the labels due by this day, YYYY-MM-DD.")],
    since: Annotated[
        str | None,
        typer.Option("--from", help="First day whose labels to send (default: only the day just due)."),
    ] = None,
    world: Annotated[
        Path, typer.Option(help="The folder `fraudops simulate --out` wrote (labels/ is read).")
    ] = DEFAULT_WORLD,
    api: Annotated[str | None, typer.Option(help="The API's URL (default http://127.0.0.1:8000).")] = None,
) -> None:
    """Send to /v1/feedback the labels due by --by: day D's are due on D + data.label_delay_days."""
    # The clock moves to --by when it is behind; a label the API already holds is taken again harmlessly.
    from fraudops import stages

    settings = get_settings()
    day = parse_day(by, "--by")
    first = parse_day(since, "--from") if since else None
    url = api_url(api)
    with friendly_errors():
        delay = load_params(settings.project_dir / "params.yaml").data.label_delay_days
        with api_client(url) as client:
            sent = stages.release_labels(client, settings, world, day, delay, first)
    due = day - dt.timedelta(days=delay)
    if not sent:
        console.print(
            f"no label files due by {day} (label delay {delay} days: days up to {due}) in {world}/labels"
        )
        return
    for label_day, count in sent.items():
        console.print(f"  labels of {label_day}: {count:,} sent")
    console.print(
        f"{sum(sent.values()):,} labels sent to {url}/v1/feedback (label delay {delay} days: due by {day} "
        f"means days up to {due})"
    )


@app.command()
def rollback(
    version: Annotated[
        str | None, typer.Argument(help="Version to serve (default: the champion the current one replaced).")
    ] = None,
    reason: Annotated[
        str, typer.Option(help="Why (tagged on the MLflow model version).")
    ] = "manual rollback",
) -> None:
    """Move the champion alias back to an earlier version; a running API follows on its next registry poll."""
    from fraudops import stages

    settings = get_settings()
    with friendly_errors():
        done = stages.rollback(settings, version, reason)
    console.print(
        f"champion: version {done.previous} → version {done.version} ({done.reason}); tagged "
        f"{stages.ROLLBACK_FROM}={done.previous} on version {done.version}. A running API serves it within "
        f"its poll interval ({settings.reload_interval_s:g} s), or at once after POST /admin/reload."
    )


class DemoPhase(enum.StrEnum):
    """``fraudops demo --phase``: the whole story, or the part before / after the API starts."""

    all = "all"
    setup = "setup"
    traffic = "traffic"


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=50, help="Customers in the simulated world.")] = 2000,
    terminals: Annotated[int, typer.Option(min=100, help="Terminals in the simulated world.")] = 4000,
    seed: Annotated[int, typer.Option(help="Seed of the whole storyline.")] = 7,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port of the demo's API (default 8000).")
    ] = None,
    pause: Annotated[
        bool, typer.Option(help="Stop after each step, name the course page to read, wait for Enter.")
    ] = False,
    no_monitoring: Annotated[
        bool, typer.Option("--no-monitoring", help="Break it: nothing watches the traffic.")
    ] = False,
    no_retraining: Annotated[
        bool, typer.Option("--no-retraining", help="Break it: monitoring alerts, no model is retrained.")
    ] = False,
    promote_latest: Annotated[
        bool, typer.Option("--promote-latest", help="Break it: the newest model serves, gate ignored.")
    ] = False,
    feature_mismatch: Annotated[
        bool, typer.Option("--feature-mismatch", help="Break it: the API computes tx_amount in cents.")
    ] = False,
    compare: Annotated[
        list[Path] | None,
        typer.Option(help="Print saved run summaries (reports/demo/summary.json) side by side; no run."),
    ] = None,
    phase: Annotated[
        DemoPhase,
        typer.Option(
            help="all: the whole story. setup: simulate, ingest, first model, then stop (skipped when "
            "done before). traffic: the rest, against a running API (--api-url), as compose.yaml runs it.",
        ),
    ] = DemoPhase.all,
    api_url: Annotated[
        str | None,
        typer.Option(help="Score through an API already running there instead of starting one."),
    ] = None,
) -> None:
    """Run the whole loop offline: simulate → ingest → train → serve → drift → retrain → promote → hot reload."""
    from fraudops.demo import DemoConfig, run_demo

    if compare:
        with friendly_errors():
            outcomes = [read_summary(path) for path in compare]
        console.print(render.outcomes_table(outcomes))
        return
    switches = tuple(
        name
        for name, on in (
            ("no-monitoring", no_monitoring),
            ("no-retraining", no_retraining),
            ("promote-latest", promote_latest),
            ("feature-mismatch", feature_mismatch),
        )
        if on
    )
    prepare_prefect()

    settings = get_settings()
    cfg = DemoConfig(
        customers=customers,
        terminals=terminals,
        seed=seed,
        port=port or settings.api_port,
        pause=pause,
        switches=switches,
        phase=phase.value,
        api_url=api_url,
    )
    with friendly_errors():
        if phase is DemoPhase.all and api_url is None:
            ensure_port_free(settings.api_host, cfg.port)
        run_demo(settings, cfg, console)


def read_summary(path: Path) -> dict[str, object]:
    """A demo run's saved figures, or a one-line error."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the run summary {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a demo run summary (reports/demo/summary.json)")
    return data


def main() -> None:
    """Console-script entry point: usage mistakes and expected failures end in one line."""
    # typer 0.29 vendors click; its exception classes live here (typer is pinned in the lock)
    from typer._click import exceptions as cli_errors

    try:
        result = app(standalone_mode=False)
    except cli_errors.NoArgsIsHelpError as exc:
        exc.show()
        raise SystemExit(0) from None
    except cli_errors.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        err_console.print(
            f"[bold red]error:[/] {exc.format_message()}{hint}", highlight=False, soft_wrap=True
        )
        raise SystemExit(exc.exit_code) from None
    except cli_errors.ClickException as exc:
        err_console.print(f"[bold red]error:[/] {exc.format_message()}", highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        raise SystemExit(130) from None
    except UserError as exc:  # raised outside a command's own handler
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    raise SystemExit(result if isinstance(result, int) else 0)
