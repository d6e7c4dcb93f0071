"""MLflow tracking and registration: one run per training cycle, one model version per run, with its contract tags."""

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
    MODEL_ARTIFACT,
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

log = logging.getLogger(__name__)
EXPERIMENT = "fraudops"
TAG_CYCLE = "fraudops.training_cycle"  # the training cycle a run belongs to (a re-run finds its run)
CONTRACT_TAGS = (TAG_THRESHOLD, TAG_FEATURES, TAG_LABEL_DELAY, TAG_DATA_VERSION, TAG_ONNX_SHA256)
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
    """The experiment id; its artifacts go where every reader of the store can fetch them.

    On the embedded store (a database file) they live inside the project's store, or under
    ``FRAUDOPS_MLFLOW_ARTIFACT_LOCATION`` (a bucket) when set. On a tracking server no location is
    given, so the server's own artifact store is used (``mlflow-artifacts:/``, proxied over HTTP): a
    path on this machine's disk would be one the API's container cannot read. An experiment keeps
    the location it was created with.
    """
    import mlflow

    use_store(settings)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    if is_server_uri(settings.tracking_uri):
        return str(mlflow.create_experiment(name))
    if settings.mlflow_artifact_location is None:
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
    return str(mlflow.create_experiment(name, artifact_location=settings.artifact_location))


def is_server_uri(uri: str) -> bool:
    """A tracking URI that names a server (http, https, databricks) rather than a local store."""
    return uri.split(":", 1)[0].lower() in {"http", "https", "databricks"}


def git_commit(root: Path) -> str:
    """The project's git commit, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def find_cycle_run(settings: Settings, cycle_id: str) -> str | None:
    """The finished training run of a cycle, if an earlier attempt logged it (its model included)."""
    from mlflow.entities import ViewType

    client = client_for(settings)
    runs = client.search_runs(
        [ensure_experiment(settings)],
        filter_string=f"tags.`{TAG_CYCLE}` = '{cycle_id}' and attributes.status = 'FINISHED'",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=1,
    )
    return str(runs[0].info.run_id) if runs else None


def discard_unfinished_runs(settings: Settings, cycle_id: str) -> list[str]:
    """Delete the runs an earlier attempt of the cycle left FAILED or RUNNING; their ids.

    A cycle keeps one run: an attempt that failed half-way through logging is logged again whole,
    and its broken run is moved to MLflow's trash (``mlflow gc`` removes it for good).
    """
    from mlflow.entities import ViewType

    client = client_for(settings)
    runs = client.search_runs(
        [ensure_experiment(settings)],
        filter_string=f"tags.`{TAG_CYCLE}` = '{cycle_id}' and attributes.status != 'FINISHED'",
        run_view_type=ViewType.ACTIVE_ONLY,
    )
    for run in runs:
        client.delete_run(run.info.run_id)
        log.info(
            "training cycle %s: deleted run %s an earlier attempt left unfinished", cycle_id, run.info.run_id
        )
    return [str(run.info.run_id) for run in runs]


def log_run(
    settings: Settings,
    model: Any,
    run_data: dict[str, Any],
    reference: pd.DataFrame,
    report_files: list[Path],
    onnx_model: bytes,
) -> str:
    """Log one training run (params, metrics, tags, report files, reference sample, model); its run id.

    The run ends FINISHED only once everything is logged, so a failed attempt is never taken for a
    complete one (:func:`find_cycle_run`). What serving needs of the model (threshold, features,
    label delay, data version, ONNX sha256) is tagged on the run, and :func:`register_run` copies it
    to the model version.
    """
    import mlflow
    import mlflow.sklearn

    # pip is deliberately absent from the uv-managed venv and pip_requirements are given explicitly
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    features: list[str] = run_data["features"]
    contract = {
        TAG_THRESHOLD: str(run_data["threshold"]),
        TAG_FEATURES: json.dumps(features),
        TAG_LABEL_DELAY: str(run_data["label_delay_days"]),
        TAG_DATA_VERSION: run_data["tags"]["data_version"],
        TAG_ONNX_SHA256: sha256(onnx_model),
    }
    experiment = ensure_experiment(settings)
    # the cycle tag goes on at creation: a run that fails at any later call is still found by its cycle
    cycle = {TAG_CYCLE: run_data["tags"][TAG_CYCLE]}
    with mlflow.start_run(experiment_id=experiment, run_name=run_data["run_name"], tags=cycle) as run:
        mlflow.log_params(run_data["params"])
        mlflow.log_metrics({k: v for k, v in run_data["metrics"].items() if np.isfinite(v)})
        mlflow.set_tags({**run_data["tags"], **contract})
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
            mlflow.sklearn.log_model(
                model,
                name=MODEL_ARTIFACT,
                pyfunc_predict_fn="predict_proba",
                pip_requirements=pip_requirements(),
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
                input_example=reference[features].head(2).astype(np.float32),
            )
        return str(run.info.run_id)


def register_run(settings: Settings, run_id: str) -> ModelInfo:
    """The model version of a training run: the one registered before for ``run_id``, else a new one.

    Registering twice would leave two versions of one model, so the registry is asked first; a retry
    or a re-run after a failure past this point finds the version and only sets its tags again.
    """
    import mlflow

    client = client_for(settings)
    found = client.search_model_versions(f"name='{settings.model_name}' and run_id='{run_id}'")
    if found:
        version = str(min(int(mv.version) for mv in found))
        log.info("run %s: version %s was registered before, not registering again", run_id, version)
    else:
        use_store(settings)
        version = str(mlflow.register_model(f"runs:/{run_id}/{MODEL_ARTIFACT}", settings.model_name).version)
        log.info("run %s: registered as %s version %s", run_id, settings.model_name, version)
    tags = client.get_run(run_id).data.tags
    for key in CONTRACT_TAGS:
        client.set_model_version_tag(settings.model_name, version, key, tags[key])
    client.update_registered_model(settings.model_name, description=MODEL_DESCRIPTION)
    return model_info_from_version(client.get_model_version(settings.model_name, version), None)
