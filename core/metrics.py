"""Fraud-detection metrics, each reported beside its random baseline (and card precision@k's ceiling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score


def card_k(n_customers: int, per_5000: int) -> int:
    """k for card precision@k: ``per_5000`` cards per 5,000 customers, at least 10."""
    return max(10, round(per_5000 * n_customers / 5000))


def local_days(stamps: pd.Series) -> np.ndarray:
    """Each datetime's day in the column's own time zone, as ``datetime64`` (no object per row)."""
    days = stamps.dt.floor("D")
    return (days.dt.tz_localize(None) if days.dt.tz is not None else days).to_numpy()


def card_precision_at_k(frame: pd.DataFrame, scores: np.ndarray, k: int) -> tuple[float, float, float]:
    """Card precision@k, its random baseline and its ceiling, averaged over test days.

    Per day a card's score is its highest transaction score; the k best cards are checked. A
    fraudulent card found in an earlier day's top k is already caught and drops out of later days.
    """
    data = pd.DataFrame(
        {
            "day": local_days(frame["tx_datetime"]),
            "customer_id": frame["customer_id"].to_numpy(),
            "fraud": frame["tx_fraud"].to_numpy(),
            "score": scores,
        }
    )
    cards = data.groupby(["day", "customer_id"], sort=True).agg(
        score=("score", "max"), fraud=("fraud", "max")
    )
    days = cards.index.get_level_values("day").to_numpy()
    customers = cards.index.get_level_values("customer_id").to_numpy()
    card_scores, card_frauds = cards["score"].to_numpy(), cards["fraud"].to_numpy()
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]]) if len(days) else np.array([], int)
    caught = customers[:0]
    precisions, baselines, ceilings = [], [], []
    for lo, hi in zip(starts, np.r_[starts[1:], len(days)], strict=True):
        fresh = lo + np.flatnonzero(~np.isin(customers[lo:hi], caught))
        if not fresh.size:
            continue
        # the k best cards; among equal scores the lower card id first (as a stable sort keeps them)
        top = fresh[np.argsort(-card_scores[fresh], kind="stable")[:k]]
        n_fraud = int(card_frauds[fresh].sum())
        precisions.append(card_frauds[top].sum() / k)
        baselines.append(n_fraud / fresh.size)
        ceilings.append(min(n_fraud, k) / k)
        caught = np.concatenate(
            [caught, customers[top[card_frauds[top] == 1]]]
        )  # detected: fraudulent, top k
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
