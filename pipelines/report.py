"""What a training run leaves for people to look at: curves, confusion matrix, importances, a model card.

Every file is written into one folder, which the training run logs to MLflow as artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.params import HyperParams

HYPERPARAMETERS = frozenset(HyperParams.model_fields)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def save_curves(y: np.ndarray, scores: np.ndarray, folder: Path, window: str) -> list[Path]:
    """The ROC curve as PNG, with its random baseline.

    The precision-recall curve is the train stage's own ``metrics/pr_curve.png`` (model, logistic and
    random baselines: :mod:`pipelines.plots`), which the run logs beside these files.
    """
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    fpr, tpr, _ = roc_curve(y, scores)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(fpr, tpr, label="model")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="random baseline")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"roc curve — test {window}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.legend()
    fig.tight_layout()
    path = folder / "roc_curve.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def save_confusion(y: np.ndarray, scores: np.ndarray, threshold: float, folder: Path) -> list[Path]:
    """The confusion matrix at the decision threshold, as JSON and PNG."""
    from sklearn.metrics import confusion_matrix

    (tn, fp), (fn, tp) = confusion_matrix(y, (scores >= threshold).astype(int), labels=[0, 1])
    counts = {"threshold": threshold, "true_negative": int(tn), "false_positive": int(fp)}
    counts |= {"false_negative": int(fn), "true_positive": int(tp)}
    (folder / "confusion_matrix.json").write_text(json.dumps(counts, indent=2), encoding="utf-8")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 3.5))
    cells = np.array([[tn, fp], [fn, tp]])
    ax.imshow(cells, cmap="Blues")
    for (row, col), value in np.ndenumerate(cells):
        colour = "white" if value > cells.max() / 2 else "black"  # readable on dark and light cells
        ax.text(col, row, f"{value:,}", ha="center", va="center", color=colour)
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["genuine", "fraud"], yticklabels=["genuine", "fraud"])
    ax.set(xlabel="predicted", ylabel="actual", title=f"at threshold {threshold:.4f}")
    fig.tight_layout()
    fig.savefig(folder / "confusion_matrix.png", dpi=100)
    plt.close(fig)
    return [folder / "confusion_matrix.json", folder / "confusion_matrix.png"]


def save_importance(
    model: Any, test: pd.DataFrame, features: list[str], folder: Path, seed: int
) -> list[Path]:
    """Permutation importance on (a sample of) the test window, scored by average precision."""
    from sklearn.inspection import permutation_importance

    sample = test.sample(n=min(len(test), 20_000), random_state=seed)
    result = permutation_importance(
        model,
        sample[features].astype(np.float32),
        sample["tx_fraud"].to_numpy(),
        scoring="average_precision",
        n_repeats=3,
        random_state=seed,
    )
    table = pd.DataFrame(
        {"feature": features, "importance": result.importances_mean, "std": result.importances_std}
    )
    table = table.sort_values("importance", ascending=True)
    table.to_csv(folder / "feature_importance.csv", index=False)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.barh(table["feature"], table["importance"], xerr=table["std"])
    ax.set(xlabel="drop in average precision when shuffled", title="Permutation importance (test window)")
    fig.tight_layout()
    fig.savefig(folder / "feature_importance.png", dpi=100)
    plt.close(fig)
    return [folder / "feature_importance.csv", folder / "feature_importance.png"]


def write_model_card(run_data: dict[str, Any], folder: Path) -> Path:
    """A short model card in markdown: what, trained on what, how good, how decided."""
    m, tags = run_data["metrics"], run_data["tags"]
    rows = "\n".join(
        f"| {label} | {m.get(f'test_{key}', float('nan')):.3f} | {m.get(f'test_{key}_random', float('nan')):.3f} |"
        for key, label in (
            ("average_precision", "average precision"),
            ("roc_auc", "ROC AUC"),
            ("card_precision_at_k", "card precision@k"),
            ("precision_at_threshold", "precision at the threshold"),
            ("recall_at_threshold", "recall at the threshold"),
        )
    )
    folds = "\n".join(
        f"| {label} | {m.get(f'test_prequential_{key}_mean', float('nan')):.3f} ± "
        f"{m.get(f'test_prequential_{key}_std', float('nan')):.3f} | "
        f"{m.get(f'test_baseline_prequential_{key}_mean', float('nan')):.3f} ± "
        f"{m.get(f'test_baseline_prequential_{key}_std', float('nan')):.3f} |"
        for key, label in (
            ("average_precision", "average precision"),
            ("roc_auc", "ROC AUC"),
            ("card_precision_at_k", "card precision@k"),
        )
    )
    hyper = ", ".join(
        f"{k}={v:g}"
        for k, v in run_data["params"].items()
        if k in HYPERPARAMETERS and isinstance(v, int | float)
    )
    text = f"""# Model card — fraud-detector

**What**: a HistGradientBoosting classifier scoring card transactions for fraud, from the
{len(run_data["features"])} features computed by `core.features` ({", ".join(run_data["features"])}).

**Trained because**: {tags["reason"]}

**Data**: DVC version `{tags["data_version"]}`; training window {tags["train_window"]}, test window
{tags["test_window"]} (a label-delay gap between them). Code: git `{tags["git_commit"]}`.

**Hyperparameters** (chosen on the validation folds inside the training window): {hyper}.

**Decision threshold**: {run_data["threshold"]:.4f}, a probability at or above it flags the transaction;
{run_data["threshold_note"]}.

**Test-window metrics** (random baseline beside each):

| metric | model | random |
|---|---|---|
{rows}

**Prequential folds** ({m.get("test_prequential_folds", float("nan")):.0f} folds, mean ± std), beside the
logistic-regression baseline on the same folds:

| metric | model | logistic baseline |
|---|---|---|
{folds}

**Gate**: {"promoted" if tags["gate.promote"] == "True" else "not promoted"} — {tags["gate.reasons"]}

**Limits**: trained on simulated transactions; terminal-risk features need labels older than the
label delay ({run_data["label_delay_days"]} days); monitor drift and delayed-label performance.
"""
    path = folder / "model_card.md"
    path.write_text(text, encoding="utf-8")
    return path
