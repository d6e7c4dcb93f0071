"""``fraudops schedule``: the deployments it serves, and a served run of the monitoring flow.

The session's Prefect test server runs no scheduler service (Prefect's temporary servers never do), so
the served test creates the run the scheduler would create (Scheduled, due now) and checks that the
command's runner executes it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.flows import load_flow_from_entrypoint
from typer.testing import CliRunner

from core.registry import (
    CHAMPION,
    TAG_DATA_VERSION,
    TAG_FEATURES,
    TAG_LABEL_DELAY,
    TAG_THRESHOLD,
    registry_client,
)
from core.settings import Settings
from fraudops.cli import app
from fraudops.schedule import MONITOR_DEPLOYMENT, TRAIN_DEPLOYMENT, TRAIN_REASON, build_deployments
from monitoring.flow import monitoring_flow
from monitoring.history import read_history
from pipelines.flows import training_flow

SERVE_TIMEOUT_S = 120.0


def test_monitoring_runs_on_the_cron_and_training_on_demand() -> None:
    monitor, train = build_deployments("15 4 * * *")
    assert (monitor.flow_name, monitor.name) == ("monitor", MONITOR_DEPLOYMENT)
    assert monitor.entrypoint == "monitoring.flow.monitoring_flow"
    [schedule] = monitor.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == (
        "15 4 * * *",
        "UTC",
        True,
    )
    assert monitor.parameters == {"today": None, "retrain": True}
    assert (train.flow_name, train.name) == ("train", TRAIN_DEPLOYMENT)
    assert train.entrypoint == "pipelines.flows.training_flow"
    assert train.schedules == []
    assert train.parameters == {"reason": TRAIN_REASON}
    # a flow run loads the flow from its entrypoint: it must be the very flow object
    assert load_flow_from_entrypoint(monitor.entrypoint) is monitoring_flow
    assert load_flow_from_entrypoint(train.entrypoint) is training_flow


def test_an_interval_replaces_the_cron_and_retraining_can_be_off() -> None:
    monitor, _ = build_deployments("15 4 * * *", interval_s=300, retrain=False)
    [schedule] = monitor.schedules
    assert schedule.schedule.interval == dt.timedelta(seconds=300)
    assert monitor.parameters == {"today": None, "retrain": False}
    assert "retraining off" in (monitor.description or "")


def test_a_bad_cron_is_refused_in_one_line(project_settings: Settings) -> None:
    result = CliRunner().invoke(app, ["schedule", "--cron", "61 * * * *"])
    assert result.exit_code == 1
    assert result.output.startswith("error:") and "61 * * * *" in result.output
    assert len(result.output.strip().splitlines()) == 1


def register_bare_champion(settings: Settings) -> None:
    """A champion version with the tags monitoring reads and no artifacts (no reference: no drift check)."""
    (settings.stores_dir / "mlflow").mkdir(parents=True, exist_ok=True)
    client = registry_client(settings.tracking_uri)
    experiment = client.create_experiment("fraudops", artifact_location=settings.artifact_root.as_uri())
    run_id = client.create_run(experiment).info.run_id
    client.set_terminated(run_id)
    client.create_registered_model(settings.model_name)
    tags = {
        TAG_THRESHOLD: "0.5",
        TAG_FEATURES: json.dumps(["tx_amount"]),
        TAG_LABEL_DELAY: "7",
        TAG_DATA_VERSION: "d1",
    }
    version = client.create_model_version(
        settings.model_name, f"runs:/{run_id}/model", run_id=run_id, tags=tags
    )
    client.set_registered_model_alias(settings.model_name, CHAMPION, version.version)


def wait_for(
    what: str, probe: Any, process: subprocess.Popen[str], timeout_s: float = SERVE_TIMEOUT_S
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with the command's output if it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"fraudops schedule exited ({process.returncode}) before {what}:\n{process.communicate()[0]}"
            )
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"no {what} within {timeout_s:.0f} s:\n{process.communicate()[0]}")


def test_schedule_serves_a_run_of_the_monitoring_flow_then_stops_on_ctrl_c(
    project_settings: Settings, prefect_server: None
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    register_bare_champion(project_settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),  # the session's server: no second one is started
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "FRAUDOPS_PROJECT_DIR": str(project_settings.project_dir),
    }
    command = [
        str(Path(sys.executable).with_name("fraudops")),
        "schedule",
        "--interval",
        "3600",
        "--no-retrain",
    ]
    process = subprocess.Popen(
        command,
        cwd=project_settings.project_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # a suite started in the background (`make test &`, some CI runners) runs with SIGINT ignored,
        # which a child inherits and Python then keeps: Ctrl-C must reach the command as in a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        with get_client(sync_client=True) as client:

            def served() -> Any:
                try:
                    return client.read_deployment_by_name(f"monitor/{MONITOR_DEPLOYMENT}")
                except ObjectNotFound:
                    return None

            deployment = wait_for("the monitoring deployment", served, process)
            assert deployment.parameters == {"today": None, "retrain": False}
            assert deployment.schedules[0].schedule.interval == dt.timedelta(hours=1)
            # what the scheduler service creates: a run of the deployment, Scheduled and due now
            run = client.create_flow_run_from_deployment(deployment.id)
            final = wait_for(
                "the end of the served run",
                lambda: (s := client.read_flow_run(run.id).state) and s.is_final() and s,
                process,
            )
            assert final.is_completed(), final.message
            [decision] = read_history(project_settings)
            assert decision.model.version == "1"
            assert decision.retrain is None

            process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                output, _ = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:  # what it printed (all of it, kept across calls) says where
                process.kill()
                printed, _ = process.communicate()
                pytest.fail(f"still running 60 s after Ctrl-C; it printed:\n{printed}")
            assert process.returncode == 0, output
            assert client.read_deployment_by_name(f"monitor/{MONITOR_DEPLOYMENT}").paused, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "monitor/scheduled" in output and "train/manual" in output
    assert "every 1:00:00" in output and "Ctrl-C" in output
    assert "stopped: schedules paused" in output


def test_a_port_taken_by_something_else_is_refused_in_one_line(
    project_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["schedule", "--prefect-port", str(port)])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: 127.0.0.1:{port} is taken by something that is not a Prefect")
    assert "--prefect-port" in result.output


class StallingRunner:
    """A stand-in for Prefect's Runner whose shutdown never ends (what a stalled event flush looks like).

    Only the runner is replaced: what is checked is that Ctrl-C still returns within the deadline and
    the schedules are paused; the real runner's shutdown is the served test above.
    """

    def __init__(self, stops: bool) -> None:
        self.stops = stops
        self.started = False
        self._loop: Any = None
        self.stop_asked = False

    async def start(self) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()
        self.done = asyncio.Event()
        self.started = True
        await self.done.wait()

    def execute_in_background(self, func: Any) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(func(), self._loop)

    async def astop(self) -> None:
        self.stop_asked = True
        if self.stops:
            self.done.set()


@pytest.mark.parametrize("stops", [True, False], ids=["runner-stops", "runner-stalls"])
def test_ctrl_c_returns_within_the_deadline_and_pauses_the_schedules(
    stops: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import _thread
    import signal
    import threading

    from fraudops import schedule as sched

    # interrupt_main() does nothing unless Python's own handler is installed, and a suite started in the
    # background (`make test &`, some CI runners) runs with SIGINT ignored: in a terminal it is installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    paused: list[list[Any]] = []
    monkeypatch.setattr(sched, "pause_schedules", paused.append)
    runner = StallingRunner(stops)
    deployments: list[Any] = ["monitor/scheduled"]
    try:
        threading.Timer(0.5, _thread.interrupt_main).start()  # what Ctrl-C does to the main thread
        began = time.monotonic()
        stopped = sched.serve(deployments, stop_timeout_s=1.0, runner=runner)
        took = time.monotonic() - began
    finally:
        signal.signal(signal.SIGINT, previous)
    assert runner.stop_asked  # Ctrl-C asks the runner for Prefect's graceful stop
    assert stopped is stops
    assert paused == [deployments]  # paused whether the runner stopped or stalled
    assert took < 10, f"Ctrl-C took {took:.1f} s to return"  # 0.5 s + at most the 1 s deadline


def test_the_ui_link_is_the_one_a_browser_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    from fraudops.schedule import PrefectApi

    api = PrefectApi("http://prefect:4200/api")  # compose: a name only the containers resolve
    monkeypatch.delenv("PREFECT_UI_URL", raising=False)
    assert api.ui_url == "http://prefect:4200"
    monkeypatch.setenv("PREFECT_UI_URL", "http://127.0.0.1:4200")
    assert api.ui_url == "http://127.0.0.1:4200"
