"""Shared fixtures: a throwaway project (its own git and DVC repository) and a small simulated world."""

from __future__ import annotations

import atexit
import datetime as dt
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from benchmarks.project import make_project
from core.params import Params, load_params
from core.registry import CHALLENGER, CHAMPION
from core.settings import Settings, get_settings
from monitoring.performance import LivePerformance
from monitoring.policy import Action, Decision
from monitoring.summary import DateWindow, ModelRef, MonitoringSummary, MonitoringWindows, ReportPaths
from pipelines.gate import GateDecision
from pipelines.results import TrainingOutcome, Windows

__all__ = ["make_project"]  # the throwaway project's one set-up, shared with the benchmarks

ROOT = Path(__file__).resolve().parents[1]

# Tool state and telemetry for everything the tests start (before Prefect or MLflow are imported).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("FRAUDOPS_RETRY_DELAY_S", "0")
if "PREFECT_HOME" not in os.environ:  # Prefect's home for the session, removed at exit
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="fraudops-tests-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
if os.environ.get("PYTHONDONTWRITEBYTECODE") and "PYTHONPYCACHEPREFIX" not in os.environ:
    # The processes the tests start (DVC stages, servers, the CLI) share a bytecode cache for the
    # session, removed at exit: without one each compiles every library it imports again (~5 s each).
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="fraudops-tests-pycache-")
    atexit.register(shutil.rmtree, os.environ["PYTHONPYCACHEPREFIX"], ignore_errors=True)


@pytest.fixture(scope="session")
def params() -> Params:
    """The project's params.yaml."""
    return load_params(ROOT / "params.yaml")


@pytest.fixture
def project_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings pointing at a fresh throwaway project."""
    root = make_project(tmp_path / "project")
    monkeypatch.setenv("FRAUDOPS_PROJECT_DIR", str(root))
    monkeypatch.chdir(root)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """Flows run against a real, temporary Prefect server, started once per session (~15 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# The local PostgreSQL server (tests marked `postgres`): absent, they skip with the reason; under
# CI=true, where CI must provide it, they fail instead.
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def connect_postgres(dbname: str = "postgres") -> Any:
    """An autocommit connection to ``dbname`` on the local server (CREATE / DROP DATABASE need one)."""
    import psycopg2

    conn = psycopg2.connect(dbname=dbname, connect_timeout=5, **PG)
    conn.autocommit = True
    return conn


def postgres_admin() -> Any:
    """:func:`connect_postgres` to the server's ``postgres`` database, or the test skips (fails under CI)."""
    try:
        return connect_postgres()
    except Exception as exc:  # psycopg2.OperationalError, or the driver missing from the environment
        detail = " ".join(str(exc).split())
        reason = f"PostgreSQL not reachable at {PG['host']}:{PG['port']}: {detail}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must provide it: user postgres, trust auth)")
        pytest.skip(reason)


def postgres_url(dbname: str) -> str:
    """The URL of ``dbname`` on the local server."""
    return f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{dbname}"


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A throwaway database on the local server for one test, dropped after it: its URL."""
    admin = postgres_admin()
    name = f"fraudops_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield postgres_url(name)
    finally:
        with admin.cursor() as cur:  # FORCE: connections the test left open go with it
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def task_runs_in_order(flow_run_id: Any, expected: int, wait_s: float = 15.0) -> list[Any]:
    """The task runs of a flow run sorted by start time, once ``expected`` of them have one.

    Task runs reach the Prefect server through events, so on a busy machine the last ones can lag
    behind the flow's return (a run without a start time would sort anywhere).
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    deadline = time.monotonic() + wait_s
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_task_runs(flow_run_filter=run_filter)
        while sum(r.start_time is not None for r in runs) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
            runs = prefect.read_task_runs(flow_run_filter=run_filter)
    return sorted(runs, key=lambda r: str(r.start_time))


def training_outcome(reason: str = "manual", version: str = "2", promote: bool = True) -> TrainingOutcome:
    """What a training cycle returns; the stand-in's figures are made up, only their recording matters."""
    day = dt.date(2026, 3, 1)
    return TrainingOutcome(
        version=version,
        alias=CHAMPION if promote else CHALLENGER,
        decision=GateDecision(promote=promote, reasons=["better"]),
        metrics={"average_precision": 0.7, "average_precision_random": 0.01},
        champion_metrics={"average_precision": 0.6, "average_precision_random": 0.01},
        previous_champion="1",
        windows=Windows(
            day, day + dt.timedelta(days=20), day + dt.timedelta(days=28), day + dt.timedelta(days=34)
        ),
        data_version="d2",
        run_id="run-2",
        cycle_id="cycle-2",
        reason=reason,
    )


def monitoring_summary(
    today: str, action: Action = "none", reasons: Sequence[str] = ("why",), rows: int = 5000, **parts: object
) -> MonitoringSummary:
    """A monitoring run of ``today`` (the week before it judged) deciding ``action``; ``parts`` replace the
    defaults: no drift checked, no labelled rows, no retraining, no reports."""
    day = dt.date.fromisoformat(today)
    window = DateWindow(start=day - dt.timedelta(days=7), end=day - dt.timedelta(days=1))
    return MonitoringSummary.model_validate(
        {
            "run_at": dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC),
            "today": day,
            "windows": MonitoringWindows(data=window, labelled=window),
            "rows": rows,
            "model": ModelRef(name="fraud-detector", version="1", run_id="r1", threshold=0.5),
            "drift": None,
            "performance": LivePerformance(rows=0, frauds=0, measured=False, reason="no labelled rows"),
            "decision": Decision(action, list(reasons)),
            "retrain": None,
            "reports": ReportPaths(),
            **parts,
        }
    )


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """A real Dask cluster shared by the session: 2 workers x 1 thread, in this process (starts in ~0.1 s)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            dashboard_address="127.0.0.1:0",  # loopback: a free port, never :8787 on every interface
            worker_dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
