"""MLflow tracking and registration: one run per training, the model registered with its contract tags."""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.registry import (
    ONNX_ARTIFACT,
    REFERENCE_ARTIFACT,
    SKOPS_TRUSTED_TYPES,
    TAG_DATA_VERSION,
    TAG_FEATURES,
    TAG_LABEL_DELAY,
    TAG_ONNX_SHA256,
    TAG_THRESHOLD,
    ModelInfo,
    model_info_from_version,
    registry_client,
)
from core.runtime import sha256
from core.settings import Settings

EXPERIMENT = "fraudops"
SERVING_PACKAGES = ("scikit-learn", "numpy", "pandas", "skops")


def pip_requirements() -> list[str]:
    """What loading the logged model needs, pinned to the versions installed here (from the lock)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in SERVING_PACKAGES]


MODEL_DESCRIPTION = (
    "Card-fraud model: HistGradientBoosting on 15 point-in-time features (amount, weekend/night flags, "
    "customer counts and mean amounts, terminal counts and delayed fraud rates over 1/7/30 days). "
    "Hyperparameters and the decision threshold (tag fraudops.threshold) are chosen on validation folds "
    "inside the training window; the same model as ONNX is the run's artifact onnx/model.onnx "
    "(sha256 in tag fraudops.onnx_sha256). "
    "Alias `champion` serves; `challenger` is the latest candidate the gate did not promote."
)


def client_for(settings: Settings) -> Any:
    """An MLflow client on the project's tracking store and model registry."""

    # without registry_uri the client follows a process-wide registry URI set by anything else
    return registry_client(settings.tracking_uri)


def use_store(settings: Settings) -> None:
    """Point MLflow's process-wide URIs at the project's store (``models:/`` URIs, registering use them)."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)


def ensure_experiment(settings: Settings, name: str = EXPERIMENT) -> str:
    """The experiment id, created with its artifacts inside the project's store."""
    import mlflow

    use_store(settings)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    return str(mlflow.create_experiment(name, artifact_location=settings.artifact_root.as_uri()))


def git_commit(root: Path) -> str:
    """The project's git commit, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def log_and_register(
    settings: Settings,
    model: Any,
    run_data: dict[str, Any],
    reference: pd.DataFrame,
    report_files: list[Path],
    onnx_model: bytes,
) -> ModelInfo:
    """Log one training run (params, metrics, tags, report files, reference sample, model); register it.

    The ONNX form of the model is an artifact of the same run; its sha256 is a tag of the version.
    """
    import mlflow
    import mlflow.sklearn

    # pip is deliberately absent from the uv-managed venv and pip_requirements are given explicitly
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    features: list[str] = run_data["features"]
    with mlflow.start_run(experiment_id=ensure_experiment(settings), run_name=run_data["run_name"]):
        mlflow.log_params(run_data["params"])
        mlflow.log_metrics({k: v for k, v in run_data["metrics"].items() if np.isfinite(v)})
        mlflow.set_tags(run_data["tags"])
        with tempfile.TemporaryDirectory() as tmp:
            ref_path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
            reference.to_parquet(ref_path, index=False)
            mlflow.log_artifact(str(ref_path), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
            onnx_path = Path(tmp) / Path(ONNX_ARTIFACT).name
            onnx_path.write_bytes(onnx_model)
            mlflow.log_artifact(str(onnx_path), artifact_path=str(Path(ONNX_ARTIFACT).parent))
        for path in report_files:
            mlflow.log_artifact(str(path), artifact_path="report")
        with warnings.catch_warnings():
            # the hint concerns integer inputs; ours are float32, the hint fires on the output schema
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            logged = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=settings.model_name,
                pyfunc_predict_fn="predict_proba",
                pip_requirements=pip_requirements(),
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
                input_example=reference[features].head(2).astype(np.float32),
            )
        version = str(logged.registered_model_version)
    client = client_for(settings)
    tags = {
        TAG_THRESHOLD: str(run_data["threshold"]),
        TAG_FEATURES: json.dumps(features),
        TAG_LABEL_DELAY: str(run_data["label_delay_days"]),
        TAG_DATA_VERSION: run_data["tags"]["data_version"],
        TAG_ONNX_SHA256: sha256(onnx_model),
    }
    for key, value in tags.items():
        client.set_model_version_tag(settings.model_name, version, key, value)
    client.update_registered_model(settings.model_name, description=MODEL_DESCRIPTION)
    return model_info_from_version(client.get_model_version(settings.model_name, version), None)
