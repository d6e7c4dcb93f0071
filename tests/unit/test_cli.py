"""The command line: every command explains itself, and user mistakes give one line that says what to do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from core.settings import Settings
from fraudops.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def restore_environment() -> Iterator[None]:
    """The CLI sets tool variables (MLflow URI, Prefect home) for its process: undo them per test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


COMMANDS = ["demo", "simulate", "ingest", "train", "serve", "monitor", "schedule", "clock"]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_explains_itself(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and len(result.output.splitlines()) > 4


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
