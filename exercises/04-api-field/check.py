"""Exercise 4's check: the scoring API with a new request field, through the real app.

A small project is built in a temporary folder as the API tests build theirs (simulated history, a
tiny model logged and registered as champion in a real sqlite MLflow registry), then the FastAPI app
of ``serving.app.create_app`` is driven with TestClient: valid values are scored (200), values outside
the field's limits are refused with 422 and the field's name, and nothing answers 500.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from exercises._common import Check, use_this_project  # noqa: E402

FIELD = "merchant_category_code"
VALID = [0, 5411, 9999]
INVALID: list[Any] = [-1, 10_000, 10**30, "grocery", 54.5, True]


def main() -> None:
    """Build the project, start the app, send valid and invalid values of the field."""
    root = use_this_project()
    os.environ.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    from core.params import load_params
    from core.simulator import SimulationConfig, write_simulation

    check = Check("exercise 4 (a request field with its limits)")
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        shutil.copy(root / "params.yaml", project / "params.yaml")
        params = load_params(project / "params.yaml")
        sim = {"customers": 300, "terminals": 600, "seed": params.seed}
        _, history = write_simulation(project / "sim", SimulationConfig(**sim, days=21))
        _, replay = write_simulation(project / "sim", SimulationConfig(**sim, days=1))
        client = start_app(project, params, history)
        with client:
            rows = replay.head(40).reset_index(drop=True)
            sent = iter(range(len(rows)))

            def body(**extra: Any) -> dict[str, Any]:
                r = rows.iloc[next(sent)]
                return {
                    "transaction_id": str(r["transaction_id"]),
                    "tx_datetime": r["tx_datetime"].isoformat(),
                    "customer_id": int(r["customer_id"]),
                    "terminal_id": int(r["terminal_id"]),
                    "tx_amount": float(r["tx_amount"]),
                    **extra,
                }

            def accepted() -> list[str]:
                problems = []
                for value in VALID:
                    answer = client.post("/v1/score", json=body(**{FIELD: value}))
                    if answer.status_code != 200:
                        problems.append(f"{FIELD}={value!r}: {answer.status_code} {answer.text[:200]}")
                answer = client.post("/v1/score", json=body())
                if answer.status_code != 200:
                    problems.append(f"a transaction without {FIELD} (it is optional): {answer.status_code}")
                return problems

            def refused() -> list[str]:
                problems = []
                for value in INVALID:
                    answer = client.post("/v1/score", json=body(**{FIELD: value}))
                    if answer.status_code == 500:
                        problems.append(f"{FIELD}={value!r} crashed the service (500)")
                    elif answer.status_code != 422:
                        problems.append(f"{FIELD}={value!r} got {answer.status_code}, not 422")
                    elif FIELD not in str(answer.json()["detail"]):
                        problems.append(f"{FIELD}={value!r}: the 422 does not name the field")
                return problems

            def batch() -> list[str]:
                good, bad = body(**{FIELD: 5411}), body(**{FIELD: 12_345})
                answer = client.post("/v1/score/batch", json={"transactions": [good, bad]})
                if answer.status_code != 422:
                    return [f"a batch with one {FIELD} out of limits got {answer.status_code}, not 422"]
                return []

            def documented() -> list[str]:
                schema = client.get("/openapi.json").json()["components"]["schemas"]["TransactionIn"]
                spec = schema.get("properties", {}).get(FIELD)
                if spec is None:
                    return [f"TransactionIn has no field {FIELD} in the API's schema"]
                shown = str(spec)
                if "9999" not in shown or "'minimum': 0" not in shown:
                    return [f"the schema of {FIELD} does not show its limits 0..9999: {spec}"]
                return []

            check.step(f"valid {FIELD} values (and none) are scored", accepted)
            check.step(f"{FIELD} outside 0..9999, or not a whole number, is a 422 naming it", refused)
            check.step("a batch with one bad value is refused whole", batch)
            check.step(f"the OpenAPI schema documents {FIELD} with its limits", documented)
    check.finish()


def start_app(project: Path, params: Any, history: Any) -> Any:
    """The app on ``project`` with a tiny champion, as tests/api/conftest.py builds its project."""
    import mlflow
    from fastapi.testclient import TestClient

    from core.settings import Settings
    from serving.app import create_app
    from tests.api.conftest import Project, log_model, write_validated

    write_validated(project, history)
    settings = Settings(
        project_dir=project,
        admin_api_key="exercise-admin-key",
        feedback_api_key="exercise-feedback-key",
        reload_interval_s=0,
        max_batch_rows=500,
    )
    os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = settings.tracking_uri
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    built = Project(project, params, history, history.iloc[:0], model_uri="")
    built.model_uri, built.onnx_sha256 = log_model(settings, params, history)
    built.tag_version("1", built.version_tags())
    built.set_champion("1")
    return TestClient(create_app(settings))


if __name__ == "__main__":
    main()
