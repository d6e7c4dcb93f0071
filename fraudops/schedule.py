"""Serve the flows with Prefect: monitoring on a schedule, training on demand (``fraudops schedule``).

Schedules need Prefect's scheduler service, which the temporary server a flow starts on its own
does not run (Prefect 3 warns "Cannot schedule flows on an ephemeral server"). So the command
serves against a real API server: the one ``PREFECT_API_URL`` names (the team setup), else one
already listening on 127.0.0.1 (``make prefect-ui``), else a ``prefect server start`` it runs itself,
on the project's ``PREFECT_HOME``, and stops on exit. Flow runs execute in child processes of the
serving process, in the project, with its settings.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from core.settings import Settings
from fraudops.errors import UserError, ensure_port_free

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

log = logging.getLogger(__name__)

MONITOR_DEPLOYMENT = "scheduled"
TRAIN_DEPLOYMENT = "manual"
TRAIN_REASON = "manual run from Prefect"
TAGS = ["fraudops"]
DEFAULT_PORT = 4200  # `prefect server start`'s and `make prefect-ui`'s


@dataclass(frozen=True)
class PrefectApi:
    """The Prefect API the deployments are served on, and the server process started for them, if any."""

    url: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def ui_url(self) -> str:
        """Where a browser opens the UI: Prefect's own ``PREFECT_UI_URL`` when set (compose: the host's
        127.0.0.1:4200, not the ``prefect`` name only containers resolve), else beside the API."""
        return os.environ.get("PREFECT_UI_URL") or self.url.removesuffix("/api")


def describe_schedule(cron: str, interval_s: int | None) -> str:
    """The schedule in words, as the console and the deployment's description show it."""
    if interval_s is not None:
        return f"every {dt.timedelta(seconds=interval_s)}"
    return f"cron {cron!r} (UTC)"


def build_deployments(
    cron: str, interval_s: int | None = None, retrain: bool = True
) -> list[RunnerDeployment]:
    """The monitoring flow on its schedule (interval when given, else cron in UTC) and training on demand.

    Entrypoints are module paths (the project is installed in the venv), so a flow run loads the same
    code whatever the serving process's working directory.
    """
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron, Interval

    from monitoring.flow import monitoring_flow
    from pipelines.flows import training_flow

    schedule = Interval(interval_s, timezone="UTC") if interval_s is not None else Cron(cron, timezone="UTC")
    monitor = monitoring_flow.to_deployment(
        name=MONITOR_DEPLOYMENT,
        schedule=schedule,
        parameters={"today": None, "retrain": retrain},
        description=f"Monitoring of the champion, {describe_schedule(cron, interval_s)}, as of the "
        "simulated clock's today; retrains when the policy says so"
        + ("." if retrain else " (retraining off: decisions are only recorded)."),
        tags=TAGS,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    train = training_flow.to_deployment(
        name=TRAIN_DEPLOYMENT,
        parameters={"reason": TRAIN_REASON},
        description="Train, gate and register a challenger on the newest versioned data (run it by hand).",
        tags=TAGS,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # to_deployment answers a coroutine only when called from async code
    return [cast("RunnerDeployment", monitor), cast("RunnerDeployment", train)]


def is_healthy(api_url: str, timeout_s: float = 2.0) -> bool:
    """True when a Prefect API answers its health check at ``api_url``."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_server(settings: Settings, port: int, timeout_s: float) -> PrefectApi:
    """``prefect server start`` on 127.0.0.1:``port`` with the project's Prefect home; waits until healthy."""
    url = f"http://127.0.0.1:{port}/api"
    log_path = settings.prefect_home / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log_file:
        # its own session: Ctrl-C in the terminal stops the serving process, which pauses the schedules
        # through this server before stopping it
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=server_env(), start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    while not is_healthy(url):
        if process.poll() is not None:
            raise UserError(f"prefect server start exited with code {process.returncode}: see {log_path}")
        if time.monotonic() > deadline:
            stop_server(process)
            raise UserError(f"the Prefect server did not answer within {timeout_s:.0f} s: see {log_path}")
        time.sleep(0.5)
    return PrefectApi(url, process, log_path)


def server_env() -> dict[str, str]:
    """The environment of a server started here: this one, without an API URL pointing elsewhere."""
    return {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}


def stop_server(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Stop a server started here (SIGTERM, then SIGKILL after ``timeout_s``)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def find_or_start_server(settings: Settings, port: int, timeout_s: float) -> PrefectApi:
    """``PREFECT_API_URL`` when set (it must answer), else a server on 127.0.0.1:``port``, started if none."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        if not is_healthy(configured):
            raise UserError(f"no Prefect API answers at PREFECT_API_URL={configured}: start it or unset it")
        return PrefectApi(configured)
    local = f"http://127.0.0.1:{port}/api"
    if is_healthy(local):
        return PrefectApi(local)
    try:
        ensure_port_free("127.0.0.1", port)
    except UserError:
        raise UserError(
            f"127.0.0.1:{port} is taken by something that is not a Prefect server: "
            "stop it, or pass --prefect-port with a free port"
        ) from None
    return start_server(settings, port, timeout_s)


@contextmanager
def prefect_api(api: PrefectApi) -> Iterator[PrefectApi]:
    """Use ``api`` in this process and the flow runs it starts; a server started here stops on exit."""
    os.environ["PREFECT_API_URL"] = api.url  # inherited by the flow-run processes
    try:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api.url}):  # prefect may be imported already
            yield api
    finally:
        if api.process is not None:
            stop_server(api.process)


STOP_TIMEOUT_S = 20.0  # how long Ctrl-C waits for the runner's own shutdown before leaving it behind


def serve(
    deployments: list[RunnerDeployment], stop_timeout_s: float = STOP_TIMEOUT_S, runner: Any = None
) -> bool:
    """Register the deployments and run their flow runs until Ctrl-C; then pause the schedules.

    The runner runs in a thread of its own and Ctrl-C stops it as SIGTERM does (Prefect's graceful
    stop: flow runs cancelled, polling ended, schedules paused). Its shutdown waits on the server
    (event flush, websocket close), which can stall on a busy machine: after ``stop_timeout_s`` the
    command pauses the schedules itself and returns False (the caller exits without waiting).
    """
    import threading

    from prefect.runner import Runner

    if runner is None:
        # one flow run at a time: a monitoring run may retrain, which must not overlap a manual training
        runner = Runner(pause_on_shutdown=True, limit=1)
        for deployment in deployments:
            runner.add_deployment(deployment)
    failure: list[BaseException] = []
    # an Event, not Thread.join: on Python 3.11 a join interrupted by Ctrl-C marks a live thread stopped
    finished = threading.Event()

    def run() -> None:
        try:
            asyncio.run(runner.start())
        except BaseException as exc:  # reported in the main thread
            failure.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=run, name="prefect-runner", daemon=True)
    thread.start()
    stopped = True
    try:
        while not finished.wait(0.5):  # Ctrl-C interrupts the main thread here
            pass
    except KeyboardInterrupt:
        log.info("Ctrl-C: stopping the Prefect runner (at most %.0f s)", stop_timeout_s)
        if runner.started and getattr(runner, "_loop", None) is not None:
            runner.execute_in_background(runner.astop)
        stopped = finished.wait(stop_timeout_s)
        if not stopped:
            log.warning("the Prefect runner did not stop within %.0f s: leaving it behind", stop_timeout_s)
    finally:
        # the runner pauses on shutdown too, but not when its shutdown stalls or fails
        pause_schedules(deployments)
    if failure and not isinstance(failure[0], KeyboardInterrupt | asyncio.CancelledError):
        raise failure[0]
    return stopped


def pause_schedules(deployments: list[RunnerDeployment]) -> None:
    """Pause the scheduled deployments, so the server schedules no runs while nothing serves them."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for deployment in deployments:
            if not deployment.schedules:
                continue
            name = f"{deployment.flow_name}/{deployment.name}"
            try:
                client.pause_deployment(client.read_deployment_by_name(name).id)
            except Exception as exc:  # shutting down: say so, do not hide what stopped the serving
                log.warning("could not pause the schedule of %s: %r", name, exc)
