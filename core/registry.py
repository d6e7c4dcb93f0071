"""The model-registry contract shared by training (writes it) and serving (reads it).

One registered model; alias ``champion`` serves, ``challenger`` is a candidate. Each model version
carries tags with what serving needs besides the model: the decision threshold, the feature list,
the label delay its terminal features assume, and the DVC version of its training data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.schemas import SCORE_COLUMNS

CHAMPION, CHALLENGER = "champion", "challenger"
MODEL_ARTIFACT = "model"
REFERENCE_ARTIFACT = "reference/reference.parquet"  # training rows: the features and SCORE_COLUMN
SCORE_COLUMN = SCORE_COLUMNS[0]  # the model's score, named as in the prediction log
ONNX_ARTIFACT = "onnx/model.onnx"  # the same model as ONNX, checked against scikit-learn at training
TAG_THRESHOLD = "fraudops.threshold"
TAG_FEATURES = "fraudops.features"
TAG_DATA_VERSION = "fraudops.data_version"
TAG_LABEL_DELAY = "fraudops.label_delay_days"
TAG_ONNX_SHA256 = "fraudops.onnx_sha256"
# MLflow error codes meaning "no such model or alias" (as opposed to an unreachable registry)
MISSING_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
SKOPS_TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


@dataclass(frozen=True)
class ModelInfo:
    """A registered model version and what serving needs to use it."""

    name: str
    version: str
    alias: str | None
    run_id: str
    threshold: float
    features: list[str]
    label_delay_days: int
    data_version: str
    onnx_sha256: str | None = None  # of the ONNX artifact, recorded at training


class ModelNotFound(LookupError):
    """No version of the model holds the alias asked for (train and promote one first)."""


def registry_client(tracking_uri: str) -> Any:
    """An MLflow client whose tracking and registry are both ``tracking_uri`` (never the process default)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def read_model_info(client: Any, name: str, alias: str) -> ModelInfo:
    """Resolve ``alias`` to a version and read its tags (raises MlflowException when absent)."""
    mv = client.get_model_version_by_alias(name, alias)
    return model_info_from_version(mv, alias)


def model_info_from_version(mv: Any, alias: str | None) -> ModelInfo:
    """Build :class:`ModelInfo` from an MLflow ``ModelVersion``."""
    tags = mv.tags
    return ModelInfo(
        name=mv.name,
        version=str(mv.version),
        alias=alias,
        run_id=mv.run_id,
        threshold=float(tags[TAG_THRESHOLD]),
        features=json.loads(tags[TAG_FEATURES]),
        label_delay_days=int(tags[TAG_LABEL_DELAY]),
        data_version=tags.get(TAG_DATA_VERSION, "unknown"),
        onnx_sha256=tags.get(TAG_ONNX_SHA256),
    )


def download_onnx(client: Any, info: ModelInfo) -> bytes:
    """The version's ONNX graph, refused unless its sha256 is the one recorded at training."""
    import tempfile
    from pathlib import Path

    from core.runtime import sha256

    if not info.onnx_sha256:
        raise ValueError(
            f"version {info.version} has no {TAG_ONNX_SHA256} tag, so its ONNX artifact cannot be "
            "verified: retrain with `fraudops train`"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(info.run_id, ONNX_ARTIFACT, tmp)
        data = Path(path).read_bytes()
    digest = sha256(data)
    if digest != info.onnx_sha256:
        raise ValueError(
            f"{ONNX_ARTIFACT} of run {info.run_id} has sha256 {digest[:12]}…, the version records "
            f"{info.onnx_sha256[:12]}…: the artifact changed after training; retrain or restore it"
        )
    return data


def load_model(info: ModelInfo) -> Any:
    """Load the scikit-learn model of a version (skops format: only the types trusted at logging load)."""
    import mlflow.sklearn

    return mlflow.sklearn.load_model(f"models:/{info.name}/{info.version}")
