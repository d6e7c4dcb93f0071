"""Fraud-detection metrics, each reported beside its random baseline (and card precision@k's ceiling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score


def card_k(n_customers: int, per_5000: int) -> int:
    """k for card precision@k: ``per_5000`` cards per 5,000 customers, at least 10."""
    return max(10, round(per_5000 * n_customers / 5000))


def card_precision_at_k(frame: pd.DataFrame, scores: np.ndarray, k: int) -> tuple[float, float, float]:
    """Card precision@k, its random baseline and its ceiling, averaged over test days.

    Per day a card's score is its highest transaction score; the k best cards are checked. A
    fraudulent card found in an earlier day's top k is already caught and drops out of later days.
    """
    data = pd.DataFrame(
        {
            "day": frame["tx_datetime"].dt.floor("D").to_numpy(),
            "customer_id": frame["customer_id"].to_numpy(),
            "fraud": frame["tx_fraud"].to_numpy(),
            "score": scores,
        }
    )
    caught: set[int] = set()
    precisions, baselines, ceilings = [], [], []
    for _, day in data.groupby("day", sort=True):
        cards = day.groupby("customer_id").agg(score=("score", "max"), fraud=("fraud", "max"))
        cards = cards[~cards.index.isin(list(caught))]
        if cards.empty:
            continue
        top = cards.nlargest(k, "score")
        n_fraud = int(cards["fraud"].sum())
        precisions.append(top["fraud"].sum() / k)
        baselines.append(n_fraud / len(cards))
        ceilings.append(min(n_fraud, k) / k)
        caught.update(top.index[top["fraud"] == 1].tolist())  # detected: fraudulent and in the top k
    if not precisions:
        return 0.0, 0.0, 0.0
    return float(np.mean(precisions)), float(np.mean(baselines)), float(np.mean(ceilings))


def evaluate_scores(frame: pd.DataFrame, scores: np.ndarray, threshold: float, k: int) -> dict[str, float]:
    """All metrics for ``scores`` on a labelled ``frame`` (needs tx_datetime, customer_id, tx_fraud)."""
    y = frame["tx_fraud"].to_numpy()
    both_classes = 0 < y.sum() < len(y)
    predicted = (scores >= threshold).astype(int)
    cpk, cpk_random, cpk_ceiling = card_precision_at_k(frame, scores, k)
    return {
        "roc_auc": float(roc_auc_score(y, scores)) if both_classes else float("nan"),
        "roc_auc_random": 0.5,
        "average_precision": float(average_precision_score(y, scores)) if both_classes else float("nan"),
        "average_precision_random": float(y.mean()) if len(y) else float("nan"),
        "card_precision_at_k": cpk,
        "card_precision_at_k_random": cpk_random,
        "card_precision_at_k_ceiling": cpk_ceiling,
        "precision_at_threshold": float(precision_score(y, predicted, zero_division=0)),
        "precision_at_threshold_random": float(y.mean()) if len(y) else float("nan"),
        "recall_at_threshold": float(recall_score(y, predicted, zero_division=0)),
        # as many alerts drawn at random catch this share of the frauds
        "recall_at_threshold_random": float(predicted.mean()) if len(y) else float("nan"),
        "fraud_rate": float(y.mean()) if len(y) else float("nan"),
        "rows": float(len(y)),
        "k": float(k),
    }
