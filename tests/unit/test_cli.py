"""The command line: each help names the real options; a user's mistake gives one line saying what to do."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer.main
from typer.core import TyperCommand, TyperGroup
from typer.testing import CliRunner

from core.settings import Settings
from core.simulator import SCENARIOS, SimulationConfig
from fraudops.cli import app

runner = CliRunner()
SIM_DEFAULTS = SimulationConfig()


@pytest.fixture(autouse=True)
def restore_environment() -> Iterator[None]:
    """The CLI sets tool variables (MLflow URI, Prefect home) for its process: undo them per test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


# Each command's options, by the name a user types: a removed or renamed one fails here (and in the docs).
COMMANDS = {
    "demo": {
        "--customers",
        "--terminals",
        "--seed",
        "--port",
        "--pause",
        "--no-pause",
        "--no-monitoring",
        "--no-retraining",
        "--promote-latest",
        "--feature-mismatch",
        "--compare",
        "--phase",
        "--api-url",
    },
    "replay": {"--from", "--to", "--world", "--api"},
    "labels": set(),
    "rollback": {"version", "--reason"},
    "simulate": {
        "--out",
        "--customers",
        "--terminals",
        "--days",
        "--start-date",
        "--seed",
        "--population-seed",
        "--radius",
        "--compromised-terminals",
        "--compromised-cards",
        "--scenario",
    },
    "ingest": {"paths"},
    "train": {"--reason"},
    "serve": {"--host", "--port"},
    "monitor": {"--today", "--retrain", "--no-retrain"},
    "schedule": {"--cron", "--interval", "--retrain", "--no-retrain", "--prefect-port"},
    "clock": set(),
}
SUBCOMMANDS = {"monitor": {"history"}, "clock": {"show", "set"}, "labels": {"release"}}


def read_help(*command: str) -> str:
    """``--help`` as a wide terminal shows it: one line per option, nothing cut off."""
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def help_row(output: str, option: str) -> str:
    """The line of ``--help`` that describes ``option``, spaces collapsed."""
    [row] = [line for line in output.splitlines() if f" {option} " in line]
    return " ".join(row.split())


def typer_command(name: str) -> TyperCommand | TyperGroup:
    """The command as typer builds it from the app: its options are the ones the CLI accepts."""
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    assert isinstance(command, TyperCommand | TyperGroup)
    return command


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_explains_itself(command: str) -> None:
    """The help says what the command does, and names each option with its own explanation."""
    cmd = typer_command(command)
    options = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    assert options == COMMANDS[command]
    output = read_help(command)
    assert " ".join((cmd.help or "").split("\n\n")[0].split()) in " ".join(output.split())
    for param in cmd.params:
        argument = f"{param.name}..." if param.nargs == -1 else str(param.name)
        row = help_row(output, param.opts[0] if param.param_type_name == "option" else argument)
        explanation = getattr(param, "help", None)  # typer's arguments and options both carry one
        assert explanation and " ".join(explanation.split()) in row, row
    if isinstance(cmd, TyperGroup):
        assert set(cmd.commands) == SUBCOMMANDS[command]
        for name, sub in cmd.commands.items():
            assert f"{name} {sub.help}" in help_row(output, name)


def test_simulate_help_shows_its_defaults_and_every_scenario() -> None:
    output = read_help("simulate")
    for option, default in [
        ("--customers", SIM_DEFAULTS.customers),
        ("--days", SIM_DEFAULTS.days),
        ("--start-date", SIM_DEFAULTS.start_date),
        ("--seed", SIM_DEFAULTS.seed),
    ]:
        assert f"[default: {default}]" in help_row(output, option)
    scenario = help_row(output, "--scenario")
    assert set(SCENARIOS) <= set(re.findall(r"[\w-]+", scenario)), scenario


def test_serve_and_demo_help_state_the_real_defaults() -> None:
    """The defaults are spelled out in the help text: they must be the ones the settings apply."""
    host, port = (Settings.model_fields[f].default for f in ("api_host", "api_port"))
    serve = read_help("serve")
    assert f"(default {host})" in help_row(serve, "--host")
    assert f"(default {port})" in help_row(serve, "--port")
    assert f"(default {port})" in help_row(read_help("demo"), "--port")
    assert "`fraudops simulate` layout" in help_row(read_help("ingest"), "paths...")


def test_ingest_help_states_the_layout_columns_and_duplicate_rules() -> None:
    """What a file must hold to be ingested, read from the help alone: a renamed column fails here."""
    from core.schemas import LABEL_COLUMNS, MAX_TX_AMOUNT, OPTIONAL_LABEL_COLUMNS, TRANSACTION_COLUMNS

    text = " ".join(read_help("ingest").split())
    heads = ("Layout", "Transactions, no other column", "Labels", "Duplicates and conflicts")
    parts = re.split(f"({'|'.join(heads)}): ", text)
    section = dict(zip(parts[1::2], parts[2::2], strict=True))
    assert list(section) == list(heads)
    assert "transactions/YYYY-MM-DD.parquet and labels/YYYY-MM-DD.parquet" in section["Layout"]
    assert "listed as ignored" in section["Layout"]
    named = re.findall(r"(\w+) \(", section["Transactions, no other column"])
    assert named == TRANSACTION_COLUMNS
    assert f"{MAX_TX_AMOUNT:,.0f}" in section["Transactions, no other column"]
    required, optional = section["Labels"].split("optional: ")
    assert re.findall(r"(\w+) \(", required) == [c for c in LABEL_COLUMNS if c not in OPTIONAL_LABEL_COLUMNS]
    assert re.findall(r"(\w+) \(", optional) == OPTIONAL_LABEL_COLUMNS
    for words in ("counted as a duplicate", "all quarantined as a conflict", "earlier one stays"):
        assert words in section["Duplicates and conflicts"]


def test_top_level_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


def test_simulate_writes_the_layout(project_settings: Settings) -> None:
    out = project_settings.project_dir / "world"
    args = ["simulate", "--out", str(out), "--customers", "50", "--terminals", "100", "--days", "3"]
    result = runner.invoke(app, [*args, "--start-date", "2026-03-01", "--scenario", "holiday"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "transactions").iterdir()) == [
        "2026-03-01.parquet",
        "2026-03-02.parquet",
        "2026-03-03.parquet",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["simulate", "--out", "x", "--days", "abc"], "--days"),
        (["simulate", "--out", "x", "--scenario", "winter"], "unknown scenario 'winter'"),
        (["simulate", "--out", "x", "--start-date", "2026-13-01"], "use YYYY-MM-DD"),
        (["monitor", "--today", "yesterday"], "use YYYY-MM-DD"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], expected: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_train_without_data_says_what_to_do(project_settings: Settings, prefect_server: None) -> None:
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 1
    assert "error: no data in" in result.output and "fraudops ingest" in result.output
    assert "Traceback" not in result.output


def test_ingest_of_a_missing_path_says_what_to_do(project_settings: Settings, prefect_server: None) -> None:
    result = runner.invoke(app, ["ingest", "no-such-folder"])
    assert result.exit_code == 1
    assert "error: no-such-folder does not exist" in result.output


def test_monitor_without_a_champion_says_what_to_do(project_settings: Settings, prefect_server: None) -> None:
    result = runner.invoke(app, ["monitor"])
    assert result.exit_code == 1
    assert "error: no 'champion' version" in result.output and "train and promote" in result.output


def test_serve_on_a_busy_port_says_what_to_do(project_settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "--port" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["simulate", "--out", "x", "--days", "abc"], "error: Invalid value for '--days'"),
        (["no-such-command"], "error: No such command 'no-such-command'"),
    ],
)
def test_the_installed_command_reports_usage_errors_in_one_line(args: list[str], expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fraudops", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert "--help" in lines[0]


def test_a_key_error_is_a_bug_and_keeps_its_traceback() -> None:
    """Expected failures end in one line; a KeyError (or IndexError) is not one of them."""
    import typer

    from core.registry import ModelNotFound
    from fraudops.errors import friendly_errors

    with pytest.raises(KeyError, match="decision"), friendly_errors():
        raise KeyError("decision")
    with pytest.raises(IndexError), friendly_errors():
        raise IndexError("list index out of range")
    with pytest.raises(typer.Exit), friendly_errors():
        raise ModelNotFound("no 'champion' version of model 'fraud-detector': train and promote one first")


def test_the_api_client_checks_readiness_and_can_then_be_opened() -> None:
    """`fraudops replay` and `labels release` open the client `api_client` returns with `with`."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from fraudops.cli import api_client
    from fraudops.errors import UserError

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health/ready" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with api_client(url) as client:
            assert client.get("/health/ready").status_code == 200
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(UserError, match=r"is not ready .*start it with `fraudops serve`"):
        api_client(url)  # nothing listens there any more
