"""A real project for the API tests: simulated history, a tiny model in a real sqlite MLflow registry.

Built once per session (about 8 s, most of it importing MLflow and creating its database). Each test
module gets its own app (its own feature state), so modules do not see each other's transactions.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from core.features import compute_features, feature_names
from core.params import Params, load_params
from core.predlog import read_predictions
from core.registry import (
    CHAMPION,
    ONNX_ARTIFACT,
    SKOPS_TRUSTED_TYPES,
    TAG_DATA_VERSION,
    TAG_FEATURES,
    TAG_LABEL_DELAY,
    TAG_ONNX_SHA256,
    TAG_THRESHOLD,
    registry_client,
)
from core.runtime import sha256
from core.schemas import LABEL_COLUMNS, TRANSACTION_COLUMNS
from core.settings import Settings
from core.simulator import SimulationConfig, write_simulation
from serving.app import create_app
from tests.api.factories import ADMIN_KEY, FEEDBACK_KEY, REPO_PARAMS, THRESHOLD

SIM = {"customers": 300, "terminals": 600}


@dataclass
class Project:
    """The session's project folder, its data and its registered model."""

    dir: Path
    params: Params
    history: pd.DataFrame  # the 21 simulated days behind data/validated (with labels)
    replay: pd.DataFrame  # the next simulated day, unseen by the app
    model_uri: str
    onnx_sha256: str = ""

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "project_dir": self.dir,
            "admin_api_key": ADMIN_KEY,
            "feedback_api_key": FEEDBACK_KEY,
            "reload_interval_s": 0,
            "max_batch_rows": 500,
            **overrides,
        }
        return Settings(**values)

    def version_tags(self) -> dict[str, str]:
        return {
            TAG_THRESHOLD: str(THRESHOLD),
            TAG_FEATURES: json.dumps(feature_names(self.params.features)),
            TAG_LABEL_DELAY: str(self.params.data.label_delay_days),
            TAG_DATA_VERSION: "test-data-v1",
            TAG_ONNX_SHA256: self.onnx_sha256,
        }

    def register_version(self, tags: dict[str, str] | None = None) -> str:
        """Register the session's model again as a new version with ``tags`` (default: valid ones)."""
        import mlflow

        mv = mlflow.register_model(self.model_uri, self.settings().model_name)
        self.tag_version(str(mv.version), tags or self.version_tags())
        return str(mv.version)

    def tag_version(self, version: str, tags: dict[str, str]) -> None:

        settings = self.settings()
        client = registry_client(settings.tracking_uri)
        for key, value in tags.items():
            client.set_model_version_tag(settings.model_name, version, key, value)

    def offline_features(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Features of ``rows`` as training computes them: the labelled history, then ``rows`` unlabelled."""
        frame = pd.concat([self.history[TRANSACTION_COLUMNS], rows[TRANSACTION_COLUMNS]], ignore_index=True)
        fraud = np.concatenate([self.history["tx_fraud"].to_numpy(), np.zeros(len(rows))])
        features = compute_features(frame, fraud, self.params.features, self.params.data.label_delay_days)
        return features.iloc[len(self.history) :].reset_index(drop=True)

    def set_champion(self, version: str) -> None:

        settings = self.settings()
        client = registry_client(settings.tracking_uri)
        client.set_registered_model_alias(settings.model_name, CHAMPION, version)


def logged_predictions(client: TestClient, ids: list[str]) -> pd.DataFrame:
    """The newest prediction-log row of each id, in the order of ``ids``, once the app's writer flushed."""
    services = client.app.state.services  # type: ignore[attr-defined]
    services.predictions.flush()
    frame = read_predictions(services.settings.prediction_log).set_index("transaction_id")
    return frame.loc[ids].reset_index()


def fresh_prediction_log(settings: Settings) -> None:
    """Remove the prediction log: an app started next rebuilds its feature state from the validated
    data alone (a restart reads the log's tail), so one module's traffic does not shape another's."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{settings.prediction_log}{suffix}").unlink(missing_ok=True)


def write_validated(project_dir: Path, history: pd.DataFrame) -> None:
    folder = project_dir / "data" / "validated"
    folder.mkdir(parents=True)
    history[TRANSACTION_COLUMNS].to_parquet(folder / "transactions.parquet", index=False)
    history[LABEL_COLUMNS].to_parquet(folder / "labels.parquet", index=False)


def log_model(settings: Settings, params: Params, history: pd.DataFrame) -> tuple[str, str]:
    """Train a tiny model on the history, log it with its ONNX form and register it as version 1.

    Returns the model URI and the ONNX artifact's sha256 (tags are set by the caller).
    """
    import mlflow
    import mlflow.sklearn
    from sklearn.ensemble import HistGradientBoostingClassifier

    from pipelines.export import export_checked

    features = compute_features(
        history, history["tx_fraud"].to_numpy(), params.features, params.data.label_delay_days
    )
    model = HistGradientBoostingClassifier(max_iter=20, random_state=params.seed)
    model.fit(features, history["tx_fraud"])
    (settings.stores_dir / "mlflow").mkdir(parents=True)
    # artifacts inside the project: MLflow's default (./mlruns) would land in the caller's working tree
    mlflow.create_experiment("api-tests", artifact_location=settings.artifact_root.as_uri())
    mlflow.set_experiment("api-tests")
    onnx_model, _ = export_checked(model, features.to_numpy(dtype=np.float32)[:1000])
    with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / Path(ONNX_ARTIFACT).name
        onnx_path.write_bytes(onnx_model)
        mlflow.log_artifact(str(onnx_path), artifact_path=str(Path(ONNX_ARTIFACT).parent))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=settings.model_name,
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=["scikit-learn==1.9.1"],
        )
    return str(info.model_uri), sha256(onnx_model)


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    import mlflow

    root = tmp_path_factory.mktemp("api-project")
    shutil.copy(REPO_PARAMS, root / "params.yaml")
    params = load_params(root / "params.yaml")
    _, history = write_simulation(root / "sim", SimulationConfig(**SIM, days=21, seed=params.seed))
    _, replay = write_simulation(root / "sim", SimulationConfig(**SIM, days=1, seed=params.seed))
    write_validated(root, history)
    project = Project(root, params, history, replay, model_uri="")
    mp = pytest.MonkeyPatch()  # MLflow exports its URIs to the environment: undo that afterwards
    for key, value in {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_TRACKING_URI": project.settings().tracking_uri,
        "MLFLOW_REGISTRY_URI": project.settings().tracking_uri,
    }.items():
        mp.setenv(key, value)
    # set the URIs too: one that an earlier test set in this process outranks the environment
    mlflow.set_tracking_uri(project.settings().tracking_uri)
    mlflow.set_registry_uri(project.settings().tracking_uri)
    project.model_uri, project.onnx_sha256 = log_model(project.settings(), params, history)
    project.tag_version("1", project.version_tags())
    project.set_champion("1")
    yield project
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    mp.undo()


@pytest.fixture(scope="module")
def client(project: Project) -> Iterator[TestClient]:
    """A running app on the session's project (lifespan included), one per test module."""
    fresh_prediction_log(project.settings())
    with TestClient(create_app(project.settings())) as test_client:
        yield test_client
