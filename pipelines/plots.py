"""Training's precision-recall curve as a PNG, beside the two baselines every candidate is judged against.

The DVC stage writes it next to ``metrics/metrics.json`` and the training run logs the same file to
MLflow (``report/pr_curve.png``), so the picture a reviewer opens is the one of the test window the
metrics come from. The series are prepared apart from the drawing: a test checks the plotted data
against scikit-learn's curve, not pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PR_CURVE_PNG = "pr_curve.png"
SIZE_INCHES, DPI = (6.4, 4.8), 100  # 640 x 480 pixels


@dataclass(frozen=True)
class Curve:
    """One line of the plot: recall on x, precision on y, and the average precision in its label."""

    label: str
    recall: np.ndarray
    precision: np.ndarray
    average_precision: float


def pr_series(y: np.ndarray, scores: np.ndarray, baseline_scores: np.ndarray | None = None) -> list[Curve]:
    """The model's curve, the logistic baseline's (when given) and the random baseline (the fraud rate).

    A random ranking's precision is the fraud rate at every recall, and so is its average precision:
    the flat line is what an AP of 0.02 has to be read against when frauds are 1 % of the rows.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    curves = []
    for label, values in (("model", scores), ("logistic baseline", baseline_scores)):
        if values is None:
            continue
        precision, recall, _ = precision_recall_curve(y, values)
        curves.append(Curve(label, recall, precision, float(average_precision_score(y, values))))
    rate = float(np.mean(y))
    curves.append(Curve("random baseline", np.array([0.0, 1.0]), np.array([rate, rate]), rate))
    return curves


def pyplot() -> Any:
    """Matplotlib's pyplot on the Agg backend: files only, no display needed (servers, CI, flows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_pr_curve(curves: list[Curve], path: Path, title: str) -> Path:
    """Draw the curves into ``path`` (640 x 480 PNG); the random baseline dashed and grey."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=SIZE_INCHES)
    for curve in curves:
        style = {"color": "grey", "linestyle": "--"} if curve.label == "random baseline" else {}
        label = f"{curve.label} (AP {curve.average_precision:.3f})"
        ax.plot(curve.recall, curve.precision, label=label, drawstyle="steps-post", **style)
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def write_pr_curve(
    y: np.ndarray, scores: np.ndarray, baseline_scores: np.ndarray | None, path: Path, window: str
) -> Path:
    """The test window's precision-recall curves, model and baselines, as one PNG."""
    return save_pr_curve(pr_series(y, scores, baseline_scores), path, f"Precision-recall, test {window}")
