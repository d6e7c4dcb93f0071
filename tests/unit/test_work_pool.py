"""prefect.yaml (flows on a work pool) declares the deployments `fraudops schedule` serves, and
deploy/prefect/worker.sh refuses to run without a Prefect server. A worker running a deployed flow
against the Prefect server on PostgreSQL: tests/integration/test_team_setup.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

from core.settings import Settings
from fraudops.schedule import MONITOR_DEPLOYMENT, TAGS, TRAIN_DEPLOYMENT, build_deployments

ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = yaml.safe_load((ROOT / "prefect.yaml").read_text())


def declared() -> dict[str, dict]:
    return {d["name"]: d for d in PREFECT_YAML["deployments"]}


def test_prefect_yaml_declares_the_served_deployments_on_the_fraudops_pool() -> None:
    served = {d.name: d for d in build_deployments(Settings.model_fields["monitor_cron"].default)}
    deployments = declared()
    assert set(deployments) == set(served) == {MONITOR_DEPLOYMENT, TRAIN_DEPLOYMENT}
    for name, deployment in deployments.items():
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert flow.name == served[name].flow_name
        assert deployment["work_pool"]["name"] == "fraudops"
        assert deployment["tags"] == TAGS
        assert set(deployment["parameters"]) == set(served[name].parameters)
    assert deployments[MONITOR_DEPLOYMENT]["parameters"] == served[MONITOR_DEPLOYMENT].parameters
    # the worker's monitoring runs when `fraudops schedule` would by default
    [schedule] = deployments[MONITOR_DEPLOYMENT]["schedules"]
    assert schedule == {"cron": Settings.model_fields["monitor_cron"].default, "timezone": "UTC"}
    assert "schedules" not in deployments[TRAIN_DEPLOYMENT]  # training runs when asked for


def test_prefect_yaml_matches_the_installed_prefect_and_runs_in_the_project_folder() -> None:
    from importlib.metadata import version

    assert PREFECT_YAML["prefect-version"] == version("prefect")
    assert PREFECT_YAML["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $FRAUDOPS_PROJECT_DIR }}"}}
    ]


def test_the_worker_script_says_what_to_do_without_a_prefect_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        ["sh", str(ROOT / "deploy/prefect/worker.sh")], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "PREFECT_API_URL is not set" in done.stderr and "make worker" in done.stderr
    assert not any(tmp_path.iterdir())  # nothing created, nothing deployed
