"""ONNX export: the fitted model as an ONNX graph that serving can score without unpickling code.

The export is checked against scikit-learn on real rows; a model whose two forms disagree by more
than ``TOLERANCE`` is refused, so it never reaches the registry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.runtime import onnx_session, session_fraud_probability

TOLERANCE = 1e-5  # largest accepted gap between scikit-learn's and ONNX Runtime's fraud probability
OPSETS = {"": 17, "ai.onnx.ml": 3}


class ExportMismatch(RuntimeError):
    """The ONNX graph does not reproduce the model's probabilities."""


def to_onnx_bytes(model: Any, n_features: int) -> bytes:
    """Convert a fitted classifier (or pipeline) taking ``n_features`` float32 columns to ONNX."""
    from skl2onnx import to_onnx

    sample = np.zeros((1, n_features), dtype=np.float32)
    onx = to_onnx(model, sample, options={"zipmap": False}, target_opset=OPSETS)
    return bytes(onx.SerializeToString())


def onnx_fraud_probability(onnx_model: bytes, X: np.ndarray) -> np.ndarray:
    """Fraud probabilities from an ONNX graph (one thread: the caller owns the cores)."""
    return session_fraud_probability(onnx_session(onnx_model), X)


def export_checked(model: Any, X: np.ndarray) -> tuple[bytes, float]:
    """The ONNX graph and its largest probability gap to scikit-learn on ``X`` (raises beyond TOLERANCE)."""
    import pandas as pd

    X = np.asarray(X, dtype=np.float32)
    onnx_model = to_onnx_bytes(model, X.shape[1])
    names = getattr(model, "feature_names_in_", None)
    frame = pd.DataFrame(X, columns=names) if names is not None else X
    expected = np.asarray(model.predict_proba(frame))[:, 1]
    gap = float(np.max(np.abs(onnx_fraud_probability(onnx_model, X) - expected))) if len(X) else 0.0
    if not gap <= TOLERANCE:
        raise ExportMismatch(
            f"the ONNX export differs from the model by {gap:.2e} (> {TOLERANCE:g}) on {len(X):,} rows: "
            "the model is not registered; check the skl2onnx version pinned in uv.lock"
        )
    return onnx_model, gap
