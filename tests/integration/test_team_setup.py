"""The team setup's servers on PostgreSQL, run natively with compose.yaml's own commands.

compose itself is not started by the test suite. Instead the `mlflow` and `prefect` services' commands
and environment are read from compose.yaml and run here, with only what the compose network supplies
swapped out: the database host (a throwaway database per compose database on the local PostgreSQL),
the listening address and port, and the container paths (temporary directories).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from core.registry import (
    CHAMPION,
    TAG_DATA_VERSION,
    TAG_FEATURES,
    TAG_LABEL_DELAY,
    TAG_THRESHOLD,
    load_model,
    read_model_info,
    registry_client,
)
from pipelines.tracking import pip_requirements
from tests.conftest import connect_postgres, postgres_admin, postgres_url
from tests.integration.tiny_run import tiny_model, tiny_run_data
from tests.model.world import mlflow_uris_restored

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
INIT_SCRIPT = ROOT / "deploy" / "postgres" / "init-databases.sql"
STARTUP_TIMEOUT_S = 180.0  # a cold `mlflow server` start took over a minute on a busy 2-core machine
MODEL_NAME = "team-setup-check"


def _compose_services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]


def _interpolate(text: str) -> str:
    """compose's ${NAME:-default} with the default (the test never sets these variables)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------------
# PostgreSQL


@dataclass(frozen=True)
class Databases:
    """Throwaway databases on the local server, one per database the compose postgres service creates."""

    by_compose_name: dict[str, str]

    def url(self, compose_url: str) -> str:
        """``compose_url`` (user:password@postgres:5432/<db>) pointed at the local throwaway database."""
        match = re.fullmatch(
            r"(?P<scheme>postgresql(?:\+\w+)?)://[^@/]*@postgres:\d+/(?P<db>\w+)", compose_url
        )
        assert match, f"not a postgres service URL: {compose_url}"
        db = self.by_compose_name.get(match["db"])
        assert db, f"{INIT_SCRIPT.relative_to(ROOT)} does not create {match['db']}"
        return postgres_url(db).replace("postgresql", match["scheme"], 1)

    def query(self, compose_name: str, sql: str) -> list[tuple[Any, ...]]:
        conn = connect_postgres(self.by_compose_name[compose_name])
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()


@pytest.fixture(scope="module")
def databases() -> Iterator[Databases]:
    admin = postgres_admin()
    names = re.findall(r"^\s*CREATE\s+DATABASE\s+(\w+)", INIT_SCRIPT.read_text(encoding="utf-8"), re.I | re.M)
    assert names, f"{INIT_SCRIPT.name} creates no database"
    prefix = f"fraudops_test_{uuid.uuid4().hex[:10]}"
    created = {name: f"{prefix}_{name}" for name in names}
    try:
        with admin.cursor() as cur:
            for db in created.values():
                cur.execute(f'CREATE DATABASE "{db}"')
        yield Databases(created)
    finally:
        with admin.cursor() as cur:
            for db in created.values():
                # FORCE: a server's pooled connections may outlive its process by a moment
                cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()


# --------------------------------------------------------------------------------------------------
# Servers


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    health_url: str

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT_S) -> float:
        """Seconds until the health endpoint answered 200; fails with the server's log otherwise."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with suppress(OSError), urllib.request.urlopen(self.health_url, timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
            time.sleep(0.25)
        pytest.fail(f"{self.name} not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        # the server's own process group: `mlflow server` runs uvicorn and a job runner as children
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                return
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait)


def _base_env(home: Path) -> dict[str, str]:
    """The caller's environment minus tool settings, plus what the image sets (see the Dockerfile)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_", "FRAUDOPS_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_HOME=str(home / "prefect"),
    )
    return env


def _start(name: str, command: list[str], env: dict[str, str], workdir: Path, health_url: str) -> Server:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(name, proc, log, health_url)


def _flag(command: list[str], flag: str) -> int:
    assert flag in command, f"compose's command has no {flag}: {command}"
    return command.index(flag) + 1


def mlflow_command(databases: Databases, artifacts: Path, port: int) -> list[str]:
    """compose's mlflow command with the database, artifact directory and address made local."""
    command = [_interpolate(str(part)) for part in _compose_services()["mlflow"]["command"]]
    assert command[:2] == ["mlflow", "server"], command
    command[_flag(command, "--backend-store-uri")] = databases.url(
        command[_flag(command, "--backend-store-uri")]
    )
    command[_flag(command, "--artifacts-destination")] = str(artifacts)
    command[_flag(command, "--host")] = "127.0.0.1"
    command[_flag(command, "--port")] = str(port)
    if "--allowed-hosts" in command:
        command[_flag(command, "--allowed-hosts")] = f"127.0.0.1:{port},localhost:{port}"
    return command


def prefect_command_and_env(databases: Databases, home: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """compose's prefect command and environment, made local the same way."""
    service = _compose_services()["prefect"]
    command = [_interpolate(str(part)) for part in service["command"]]
    assert command[:3] == ["prefect", "server", "start"], command
    command[_flag(command, "--host")] = "127.0.0.1"
    command[_flag(command, "--port")] = str(port)
    env = {key: _interpolate(str(value)) for key, value in service["environment"].items()}
    key = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
    env[key] = databases.url(env[key])
    env["PREFECT_UI_API_URL"] = f"http://127.0.0.1:{port}/api"
    env["PREFECT_UI_STATIC_DIRECTORY"] = str(home / "prefect" / "ui")
    assert not [v for v in env.values() if "/app/" in v or ":4200" in v], env  # nothing container-only left
    return command, env


@dataclass
class TeamServers:
    mlflow: Server
    mlflow_url: str
    artifacts: Path
    prefect: Server
    prefect_url: str


@pytest.fixture(scope="module")
def team_servers(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServers]:
    """Both servers started at once, as compose starts them (migrations run in parallel, ~15 s)."""
    workdir = tmp_path_factory.mktemp("team-setup")
    artifacts = workdir / "mlflow-artifacts"
    artifacts.mkdir()
    env = _base_env(workdir)
    mlflow_port, prefect_port = _free_port(), _free_port()
    servers: list[Server] = []
    try:
        servers.append(
            _start(
                "mlflow server",
                mlflow_command(databases, artifacts, mlflow_port),
                env,
                workdir,
                f"http://127.0.0.1:{mlflow_port}/health",
            )
        )
        command, prefect_env = prefect_command_and_env(databases, workdir, prefect_port)
        servers.append(
            _start(
                "prefect server",
                command,
                {**env, **prefect_env},
                workdir,
                f"http://127.0.0.1:{prefect_port}/api/health",
            )
        )
        yield TeamServers(
            mlflow=servers[0],
            mlflow_url=f"http://127.0.0.1:{mlflow_port}",
            artifacts=artifacts,
            prefect=servers[1],
            prefect_url=f"http://127.0.0.1:{prefect_port}/api",
        )
    finally:
        for server in servers:
            server.stop()


@contextmanager
def mlflow_uris(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking and registry URIs at ``uri``, then put them back."""
    import mlflow

    with mlflow_uris_restored():
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        yield


# --------------------------------------------------------------------------------------------------
# Tests


def test_mlflow_server_on_postgres_registers_and_serves_a_champion(
    team_servers: TeamServers, databases: Databases
) -> None:
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    started = team_servers.mlflow.wait_healthy()
    print(f"mlflow server healthy after {started:.1f} s")
    client = registry_client(team_servers.mlflow_url)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] + 0.1 * rng.normal(size=40) > 0).astype(int)
    model = LogisticRegression().fit(x, y)

    with mlflow_uris(team_servers.mlflow_url):
        experiment_id = client.create_experiment("team-setup")
        # artifacts go through the server (compose: --artifacts-destination on the volume)
        assert client.get_experiment(experiment_id).artifact_location.startswith("mlflow-artifacts:")
        with mlflow.start_run(experiment_id=experiment_id):
            logged = mlflow.sklearn.log_model(
                model, name="model", registered_model_name=MODEL_NAME, pip_requirements=pip_requirements()
            )
        version = str(logged.registered_model_version)
        for key, value in {
            TAG_THRESHOLD: "0.5",
            TAG_FEATURES: json.dumps(["a", "b", "c"]),
            TAG_LABEL_DELAY: "7",
            TAG_DATA_VERSION: "test",
        }.items():
            client.set_model_version_tag(MODEL_NAME, version, key, value)
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, version)

        # what serving does: resolve @champion, read the contract tags, load the model
        info = read_model_info(registry_client(team_servers.mlflow_url), MODEL_NAME, CHAMPION)
        assert (info.version, info.alias, info.features) == ("1", CHAMPION, ["a", "b", "c"])
        loaded = load_model(info)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))

    # the registry lives in the PostgreSQL database, the model files in the artifacts destination
    assert databases.query("mlflow", "SELECT name, alias, version FROM registered_model_aliases") == [
        (MODEL_NAME, CHAMPION, 1)
    ]
    assert databases.query("mlflow", "SELECT count(*) FROM alembic_version") == [(1,)]
    assert list(team_servers.artifacts.rglob("MLmodel")), "no model files in the artifacts destination"


def test_training_against_the_server_stores_the_model_where_the_api_container_can_load_it(
    team_servers: TeamServers, tmp_path: Path
) -> None:
    """The path users take: ``log_run`` + ``register_run`` (what training calls) against the server,
    then the model loaded as the API loads it, with the training side's disk gone (another container)."""
    import shutil

    import mlflow
    import pandas as pd

    from core.registry import download_onnx
    from core.settings import Settings
    from pipelines.export import onnx_fraud_probability, to_onnx_bytes
    from pipelines.tracking import ensure_experiment, log_run, register_run

    team_servers.mlflow.wait_healthy()
    trainer = tmp_path / "trainer"  # the training container's project: nothing else can read it
    settings = Settings(
        project_dir=trainer, mlflow_tracking_uri=team_servers.mlflow_url, model_name="team-path-check"
    )
    model, x, features = tiny_model(seed=1)
    onnx_model = to_onnx_bytes(model, len(features))
    run_data = tiny_run_data("team-path-check", features)
    with mlflow_uris_restored():
        experiment = ensure_experiment(settings, "team-path-check")
        location = mlflow.get_experiment(experiment).artifact_location
        assert location.startswith("mlflow-artifacts:"), (
            f"artifacts would go to the trainer's disk: {location}"
        )
        run_id = log_run(settings, model, run_data, pd.DataFrame(x, columns=features), [], onnx_model)
        info = register_run(settings, run_id)
    shutil.rmtree(trainer, ignore_errors=True)

    # the API: a registry client on the server URL, the ONNX artifact downloaded through the server
    served = download_onnx(registry_client(team_servers.mlflow_url), info)
    assert served == onnx_model
    np.testing.assert_allclose(
        onnx_fraud_probability(served, x), model.predict_proba(x)[:, 1], rtol=1e-4, atol=1e-5
    )
    assert list(team_servers.artifacts.rglob("model.onnx")), "the model is not in the server's artifact store"


def test_prefect_server_on_postgres_is_healthy_and_stores_flows(
    team_servers: TeamServers, databases: Databases
) -> None:
    started = team_servers.prefect.wait_healthy()
    print(f"prefect server healthy after {started:.1f} s")
    request = urllib.request.Request(
        f"{team_servers.prefect_url}/flows/",
        data=json.dumps({"name": "team-setup-check"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status in (200, 201)
    assert databases.query("prefect", "SELECT name FROM flow") == [("team-setup-check",)]
    # its own alembic_version, next to (not inside) MLflow's database
    assert databases.query("prefect", "SELECT count(*) FROM alembic_version") == [(1,)]


def test_a_process_worker_runs_the_deployed_monitoring_flow_against_the_server(
    team_servers: TeamServers, project_settings: Any, tmp_path: Path
) -> None:
    """prefect.yaml's deployments on the `fraudops` process pool, against the Prefect server on
    PostgreSQL: deploy/prefect/worker.sh (`make worker`) creates the pool and deploys, a run of the
    monitoring flow is asked for, the worker runs it in the project and the monitoring history records
    its decision."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.client.schemas.objects import StateType

    from monitoring.history import read_history
    from tests.unit.test_schedule import register_bare_champion

    team_servers.prefect.wait_healthy()
    register_bare_champion(project_settings)
    env = _base_env(tmp_path) | {
        "PREFECT_API_URL": team_servers.prefect_url,
        "FRAUDOPS_PROJECT_DIR": str(project_settings.project_dir),  # prefect.yaml's working directory
        "FRAUDOPS_PREFECT_FILE": str(ROOT / "prefect.yaml"),  # the test's project holds only data
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }

    def worker_once() -> None:
        """deploy/prefect/worker.sh as `make worker` runs it, for one polling pass."""
        done = subprocess.run(
            ["sh", str(ROOT / "deploy/prefect/worker.sh"), "--run-once"],
            env=env | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
            cwd=project_settings.project_dir,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"worker.sh:\n{done.stdout}\n{done.stderr}"

    worker_once()  # creates the pool, deploys prefect.yaml; nothing is due yet
    client = SyncPrefectClient(team_servers.prefect_url)
    with client:
        monitor = client.read_deployment_by_name("monitor/scheduled")
        assert monitor.work_pool_name == "fraudops"
        assert monitor.schedules[0].schedule.cron == "0 6 * * *"
        assert client.read_deployment_by_name("train/manual").work_pool_name == "fraudops"
        # `prefect deploy` stored the project folder the script was given, where runs will start
        assert monitor.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": env["FRAUDOPS_PROJECT_DIR"]}}
        ]
        run = client.create_flow_run_from_deployment(monitor.id, parameters={"retrain": False})
        # a second start redeploys in place, then takes the due run and runs it as a child process
        worker_once()
        final = client.read_flow_run(run.id).state
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[monitor.id]))
        )
    assert final is not None and final.is_completed(), final
    # the cron schedule queues future runs; apart from those, one run: the worker neither retried nor
    # duplicated it
    assert [r.id for r in runs if r.state_type != StateType.SCHEDULED] == [run.id]
    later = [r.expected_start_time for r in runs if r.id != run.id]
    assert all(start is not None and start > final.timestamp for start in later)
    [decision] = read_history(project_settings)
    assert decision.model.version == "1" and decision.retrain is None


@pytest.mark.parametrize("worker_type", ["docker", "kubernetes"])
def test_the_documented_job_templates_create_work_pools_on_the_server(
    team_servers: TeamServers, worker_type: str
) -> None:
    """deploy/prefect/<type>.json, as docs/course/10-deployment.md creates a docker or kubernetes pool
    with it: the server validates the template (every placeholder a declared variable) and keeps it."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.actions import WorkPoolCreate

    team_servers.prefect.wait_healthy()
    template = json.loads((ROOT / f"deploy/prefect/{worker_type}.json").read_text())
    with SyncPrefectClient(team_servers.prefect_url) as client:
        client.create_work_pool(
            WorkPoolCreate(name=f"fraudops-{worker_type}", type=worker_type, base_job_template=template),
            overwrite=True,
        )
        stored = client.read_work_pool(f"fraudops-{worker_type}")
    assert stored.type == worker_type
    assert stored.base_job_template == template
