"""prefect.yaml (flows on a work pool) declares the deployments `fraudops schedule` serves, and
deploy/prefect/worker.sh refuses to run without a Prefect server. A worker running a deployed flow
against the Prefect server on PostgreSQL: tests/integration/test_team_setup.py."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
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


def _job_templates() -> Any:
    spec = importlib.util.spec_from_file_location("job_templates", ROOT / "deploy/prefect/job_templates.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("worker_type", ["docker", "kubernetes"])
def test_committed_job_templates_are_the_installed_prefects_with_fraudops_defaults(worker_type: str) -> None:
    templates = _job_templates()
    committed = json.loads((ROOT / f"deploy/prefect/{worker_type}.json").read_text())
    # regenerate with `python deploy/prefect/job_templates.py` after a Prefect upgrade
    assert committed == templates.fraudops_template(worker_type)
    default = templates.default_template(worker_type)
    assert committed["job_configuration"] == default["job_configuration"]  # only defaults differ
    properties = committed["variables"]["properties"]
    assert properties["env"]["default"]["FRAUDOPS_PROJECT_DIR"] == "/workspace"
    assert properties["image"]["default"].endswith(("fraudops:local", "fraudops:latest"))
