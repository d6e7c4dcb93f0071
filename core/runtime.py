"""The model's runtime form: an ONNX graph scored by ONNX Runtime, shared by training and serving.

Training checks the graph against scikit-learn before registering it; serving loads only the graph,
after checking its sha256 against the one recorded at training. Loading it executes no pickled code.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

PROBABILITIES = "probabilities"  # skl2onnx's output with zipmap off: one column per class


def sha256(data: bytes) -> str:
    """Hex digest identifying an artifact."""
    return hashlib.sha256(data).hexdigest()


def onnx_session(onnx_model: bytes) -> Any:
    """An ONNX Runtime session on one thread (the caller owns the cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])


def session_fraud_probability(session: Any, X: np.ndarray) -> np.ndarray:
    """Fraud probability of each float32 row of ``X``."""
    name = session.get_inputs()[0].name
    probabilities = session.run([PROBABILITIES], {name: np.ascontiguousarray(X, dtype=np.float32)})[0]
    return np.asarray(probabilities)[:, 1]
