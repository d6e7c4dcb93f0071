"""Base job templates for running prefect.yaml's deployments on `docker` or `kubernetes` work pools.

The installed Prefect carries each worker type's default template; this writes them next to this
file with fraudops' defaults filled in (the image, the workspace, the tracking server), so a team
creates such a pool in one command:

    python deploy/prefect/job_templates.py            # rewrite docker.json and kubernetes.json
    prefect work-pool create fraudops-docker --type docker --base-job-template deploy/prefect/docker.json

tests/unit/test_work_pool.py fails when the committed files differ from what this writes, so a Prefect
upgrade that changes a default template is seen. The workers of these types come from the
prefect-docker and prefect-kubernetes packages, which a team installs where its worker runs.
"""

from __future__ import annotations

import json
from copy import deepcopy
from pathlib import Path
from typing import Any

import prefect

HERE = Path(__file__).resolve().parent
BUNDLED = Path(prefect.__file__).parent / "server/api/collections_data/views/aggregate-worker-metadata.json"

# What every flow run needs, whichever infrastructure starts it: the project folder (the workspace
# volume in compose, the image's /app elsewhere) and the MLflow server; PREFECT_API_URL the worker sets.
FLOW_ENV = {"FRAUDOPS_PROJECT_DIR": "/workspace", "FRAUDOPS_MLFLOW_TRACKING_URI": "http://mlflow:5000"}
DEFAULTS: dict[str, dict[str, Any]] = {
    # compose's image, network and workspace volume (project name `fraudops`: `docker compose -p fraudops`)
    "docker": {
        "image": "fraudops:local",
        "image_pull_policy": "Never",
        "networks": ["fraudops_default"],
        "volumes": ["fraudops_workspace:/workspace"],
        "env": FLOW_ENV,
        "auto_remove": True,
    },
    # the image pushed to the team's registry; the workspace is a PersistentVolumeClaim the team adds
    "kubernetes": {
        "image": "registry.example.com/fraudops:latest",
        "namespace": "fraudops",
        "env": FLOW_ENV,
        "finished_job_ttl": 3600,
    },
}


def default_template(worker_type: str) -> dict[str, Any]:
    """The installed Prefect's default base job template of a worker type (its bundled registry)."""
    registry = json.loads(BUNDLED.read_text(encoding="utf-8"))
    for collection in registry.values():
        for worker in collection.values():
            if worker.get("type") == worker_type:
                return deepcopy(worker["default_base_job_configuration"])
    raise LookupError(f"Prefect {prefect.__version__} has no worker type {worker_type!r}")


def fraudops_template(worker_type: str) -> dict[str, Any]:
    """The default template with fraudops' values as the variables' defaults."""
    template = default_template(worker_type)
    properties = template["variables"]["properties"]
    for name, value in DEFAULTS[worker_type].items():
        if name not in properties:
            raise KeyError(f"{worker_type} job template has no variable {name!r}: update DEFAULTS")
        properties[name]["default"] = value
    return template


def main() -> None:
    for worker_type in DEFAULTS:
        path = HERE / f"{worker_type}.json"
        path.write_text(json.dumps(fraudops_template(worker_type), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
